"""Documents: record an upload, read, list, delete, and the state changes of processing.

Each function works in the caller's transaction and only flushes; the multi-transaction
steps (an upload processed during the request, the processing itself) are in
:mod:`.flows`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from keel.documents import repository
from keel.documents.chunking import Chunk
from keel.documents.detect import DocumentType
from keel.documents.errors import DocumentNotDeletable, DocumentNotFound
from keel.documents.models import Status
from keel.documents.repository import Rows
from keel.documents.schemas import DocumentFilters, DocumentUploadFields
from keel.event_types import EventType
from keel.jobs import service as jobs
from keel.jobs.schemas import JobAccepted
from keel.platform.db.base import utcnow
from keel.platform.events import emit
from keel.platform.http.etag import require_match, strong_etag
from keel.platform.http.listing import CursorPage, ListParams
from keel.platform.http.pagination import Page
from keel.platform.http.uploads import UploadedFile
from keel.platform.security.principal import Principal
from keel.platform.storage import Storage
from keel.sharing import access
from keel.sharing.models import Level
from keel.sharing.service import check_level

PROCESS_TASK = "documents.process"
MAX_ERROR_CHARS = 500


@dataclass(frozen=True, slots=True)
class ReceivedUpload:
    """An upload received in full and checked, before anything is written."""

    file: UploadedFile
    media_type: DocumentType
    fields: DocumentUploadFields
    webhook: jobs.WebhookTarget | None


def render(row: Rows) -> dict[str, Any]:
    """The API representation (see ``schemas.Document``), ready for JSON."""
    return {
        "id": str(row.id),
        "title": row.title,
        "filename": row.filename,
        "media_type": row.media_type,
        "size_bytes": row.size_bytes,
        "sha256": row.sha256,
        "status": row.status,
        "error": row.error,
        "chunk_count": row.chunk_count,
        "text_chars": row.text_chars,
        "product_id": None if row.product_id is None else str(row.product_id),
        "owner_id": str(row.owner_id),
        "job_id": None if row.job_id is None else str(row.job_id),
        "version": row.version,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "processed_at": row.processed_at,
    }


def render_chunk(row: Rows) -> dict[str, Any]:
    # Unpacked: ``row.index`` would be the tuple method.
    index, start_char, end_char, text = row
    return {"index": index, "start_char": start_char, "end_char": end_char, "text": text}


def etag(row: Rows) -> str:
    return strong_etag(row.id, row.version)


async def create(
    session: AsyncSession, principal: Principal, *, storage: Storage, upload: ReceivedUpload
) -> tuple[Rows, JobAccepted]:
    """Record the document, store its file and queue its processing.

    The file is stored inside the transaction, under the hash's lock: a concurrent
    delete of the last other document with these bytes waits, so it cannot remove the
    file this row needs. Should the transaction roll back afterwards, the stored file is
    at worst an orphan (waste, not damage).
    """
    fields = upload.fields
    if fields.product_id is not None:
        level = await access.product_level_by_id(session, principal, fields.product_id)
        check_level("product", level, Level.EDITOR, field="product_id")
    await repository.lock_hash(session, upload.file.sha256)
    now = utcnow()
    row = await repository.insert_document(
        session,
        {
            "owner_id": principal.user_id,
            "product_id": fields.product_id,
            "title": fields.title or upload.file.filename[:200],
            "filename": upload.file.filename,
            "media_type": upload.media_type.value,
            "size_bytes": upload.file.size,
            "sha256": upload.file.sha256,
            "status": Status.PENDING.value,
            "webhook_url": None if upload.webhook is None else upload.webhook.url,
            "created_at": now,
            "updated_at": now,
        },
    )
    await storage.put(upload.file.path, upload.file.sha256)
    accepted = await jobs.submit(
        session, principal, kind=PROCESS_TASK, payload={"document_id": str(row.id)}, webhook=upload.webhook
    )
    # Not a change a client made: the version stays as inserted.
    updated = await repository.set_job(session, row.id, accepted.job_id)
    return updated, accepted


async def get(session: AsyncSession, principal: Principal, *, document_id: uuid.UUID) -> Rows:
    row = await repository.get_readable(session, principal, document_id)
    if row is None:
        raise DocumentNotFound()
    return row


async def list_documents(
    session: AsyncSession, principal: Principal, *, filters: DocumentFilters, params: ListParams
) -> Page[dict[str, Any]] | CursorPage:
    statement = repository.visible(principal, filters)
    if params.cursor is None:
        return (await repository.list_page(session, statement, params, repository.SORTING)).map(render)
    rows, next_cursor = await repository.list_after(session, statement, params, repository.SORTING)
    return CursorPage([render(row) for row in rows], next_cursor, params.page)


async def list_chunks(
    session: AsyncSession, principal: Principal, *, document_id: uuid.UUID, params: ListParams
) -> Page[dict[str, Any]] | CursorPage:
    await get(session, principal, document_id=document_id)
    statement = repository.chunks_of(document_id)
    sorting = repository.CHUNK_SORTING
    if params.cursor is None:
        return (await repository.list_page(session, statement, params, sorting)).map(render_chunk)
    rows, next_cursor = await repository.list_after(session, statement, params, sorting)
    return CursorPage([render_chunk(row) for row in rows], next_cursor, params.page)


async def _may_delete(session: AsyncSession, principal: Principal, row: Rows) -> bool:
    if principal.is_admin or row.owner_id == principal.user_id:
        return True
    if row.product_id is None:
        return False
    return await access.product_level_by_id(session, principal, row.product_id) >= Level.OWNER


async def delete(
    session: AsyncSession,
    principal: Principal,
    *,
    storage: Storage,
    document_id: uuid.UUID,
    if_match: list[str] | None,
) -> None:
    """Delete the document and its chunks; its file too when no other document has the
    same bytes. The file goes before the commit, under the hash's lock, so no upload of
    those bytes can be relying on it: if the commit then fails, a row points at a missing
    file, which reads as a 404 on ``/content`` and a failed processing."""
    row = await repository.get_readable(session, principal, document_id, for_update=True)
    if row is None:
        raise DocumentNotFound()
    if not await _may_delete(session, principal, row):
        raise DocumentNotDeletable()
    require_match(if_match, etag(row))
    await repository.lock_hash(session, row.sha256)
    await repository.delete_document(session, row.id)
    if not await repository.hash_in_use(session, row.sha256, besides=row.id):
        await storage.delete(row.sha256)


# --- Processing ------------------------------------------------------------------------


async def start_processing(session: AsyncSession, document_id: uuid.UUID) -> Rows | None:
    """Mark the document ``processing``; None when there is nothing to do: it was deleted,
    or an earlier run already finished it (a rerun after a crash past its commit)."""
    row = await repository.get(session, document_id, for_update=True)
    if row is None or row.status in (Status.READY, Status.FAILED):
        return None
    values = {"status": Status.PROCESSING.value}
    return await repository.update_document(session, document_id, values, utcnow())


async def finish_ready(
    session: AsyncSession, document_id: uuid.UUID, *, chunks: Sequence[Chunk], text_chars: int
) -> Rows | None:
    """Store the chunks (replacing any a crashed run left) and mark the document ready;
    None if it was deleted meanwhile."""
    rows = [{"index": c.index, "start_char": c.start, "end_char": c.end, "text": c.text} for c in chunks]
    values = {
        "status": Status.READY.value,
        "error": None,
        "chunk_count": len(chunks),
        "text_chars": text_chars,
    }
    return await _finish(session, document_id, rows, values, EventType.DOCUMENT_PROCESSED)


async def finish_failed(session: AsyncSession, document_id: uuid.UUID, *, reason: str) -> Rows | None:
    """Mark the document failed with ``reason``; None if it was deleted meanwhile."""
    values = {
        "status": Status.FAILED.value,
        "error": reason[:MAX_ERROR_CHARS],
        "chunk_count": 0,
        "text_chars": None,
    }
    return await _finish(session, document_id, [], values, EventType.DOCUMENT_FAILED)


async def _finish(
    session: AsyncSession,
    document_id: uuid.UUID,
    chunks: Sequence[dict[str, Any]],
    values: dict[str, Any],
    event_type: EventType,
) -> Rows | None:
    # The row lock first: a delete running meanwhile either went before (nothing to do)
    # or waits until these chunks are in, then removes them with the document.
    if await repository.get(session, document_id, for_update=True) is None:
        return None
    await repository.replace_chunks(session, document_id, chunks)
    now = utcnow()
    row = await repository.update_document(session, document_id, {**values, "processed_at": now}, now)
    if row is not None:
        await _announce(session, event_type, row)
    return row


async def _announce(session: AsyncSession, event_type: EventType, row: Rows) -> None:
    await emit(
        session, event_type, render(row), subject_type="document", subject_id=row.id, actor_id=row.owner_id
    )
