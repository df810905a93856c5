"""The steps of documents that span several transactions, each owning its own.

- :func:`upload`: the file is already received (no session was open while it
  streamed: on SQLite a writer session is the database's write lock); one short
  transaction records it, and with ``async_processing=false`` it is then processed
  here, in the request.
- :func:`process`: what the ``documents.process`` job runs (and an upload processed in
  the request): mark it processing, extract the text in a child process with no
  session open, then store the chunks and the outcome in one transaction.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import IO, Any

import structlog

from keel.documents import repository, service
from keel.documents.chunking import chunk_text
from keel.documents.detect import DocumentType
from keel.documents.extract import ExtractionFailed, extract_text
from keel.documents.repository import Rows
from keel.documents.service import ReceivedUpload
from keel.jobs.schemas import JobAccepted
from keel.platform.resources import Resources
from keel.platform.security.principal import Principal
from keel.platform.storage import StorageNotFound

log = structlog.get_logger("keel.documents")


async def upload(
    resources: Resources, principal: Principal, received: ReceivedUpload
) -> tuple[Rows, JobAccepted]:
    """Record the upload; processed before returning when ``async_processing`` is false.

    The job is queued either way: if this process dies while processing in the request,
    a worker finishes the document. When the request got there first, the job finds the
    document finished and ends without redoing it.
    """
    async with resources.db.writer() as session:
        row, accepted = await service.create(session, principal, storage=resources.storage, upload=received)
        await session.commit()
    if not received.fields.async_processing:
        await process(resources, row.id)
        async with resources.db.reader() as session:
            row = await repository.get(session, row.id) or row
    return row, accepted


async def process(resources: Resources, document_id: uuid.UUID) -> dict[str, Any]:
    """Extract, chunk and store; the result of the ``documents.process`` job.

    A file whose text cannot be read leaves the document ``failed`` and returns normally:
    the failure belongs to the document (retrying would fail the same way), not to the
    job, which did its work. Anything unexpected (database, storage) propagates, so the
    job is retried; a retry replaces whatever chunks an interrupted run left.
    """
    db = resources.db
    async with db.writer() as session:
        row = await service.start_processing(session, document_id)
        await session.commit()
    if row is None:
        return {"document_id": str(document_id), "status": "skipped"}
    settings = resources.settings
    try:
        text = await _extract(resources, row)
    except ExtractionFailed as exc:
        async with db.writer() as session:
            failed = await service.finish_failed(session, document_id, reason=exc.reason)
            await session.commit()
        log.info("documents.processing.failed", document_id=str(document_id), reason=exc.reason)
        return {"document_id": str(document_id), "status": "failed" if failed else "deleted"}
    except StorageNotFound:
        async with db.reader() as session:
            if await repository.get(session, document_id) is None:
                return {"document_id": str(document_id), "status": "deleted"}
        raise
    # Pure CPU over a string no one else holds: safe in a worker thread, and it keeps a
    # 20 MiB text from stalling the event loop.
    chunks = await asyncio.to_thread(
        chunk_text, text, size=settings.document_chunk_size, overlap=settings.document_chunk_overlap
    )
    async with db.writer() as session:
        ready = await service.finish_ready(session, document_id, chunks=chunks, text_chars=len(text))
        await session.commit()
    if ready is None:
        return {"document_id": str(document_id), "status": "deleted"}
    log.info("documents.processing.ready", document_id=str(document_id), chunks=len(chunks))
    return {"document_id": str(document_id), "status": ready.status, "chunk_count": ready.chunk_count}


async def _extract(resources: Resources, row: Rows) -> str:
    """The text of the document's stored file, read from a private copy: the extraction
    child opens a local path, and an S3 object has none."""
    storage = resources.storage
    settings = resources.settings
    path = await storage.new_temp_file()
    try:
        async with await storage.open(row.sha256) as chunks:
            with path.open("wb") as file:
                async for chunk in chunks:
                    await asyncio.to_thread(_write, file, chunk)
        return await extract_text(
            path,
            DocumentType(row.media_type),
            timeout_seconds=settings.extraction_timeout_seconds,
            memory_bytes=settings.extraction_memory_mb * 1024 * 1024,
        )
    finally:
        await asyncio.to_thread(_discard, path)


def _write(file: IO[bytes], chunk: bytes) -> None:
    file.write(chunk)


def _discard(path: Path) -> None:
    path.unlink(missing_ok=True)
