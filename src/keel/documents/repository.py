"""Queries for documents and their chunks.

Visibility is a ``WHERE`` clause: an admin sees every document; anyone else an
unattached document they own, and an attached one when they may read its (live)
product. A document the caller may not see is simply not found.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Row,
    Select,
    delete,
    exists,
    func,
    insert,
    select,
    text,
    true,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from keel.documents.models import Document, DocumentChunk
from keel.documents.schemas import DocumentFilters
from keel.platform.http.listing import ListParams, SortField, Sorting
from keel.platform.http.pagination import Page
from keel.platform.security.principal import Principal
from keel.products.models import Product
from keel.sharing import access

Rows = Row[*tuple[Any, ...]]

COLUMNS = (
    Document.id,
    Document.title,
    Document.filename,
    Document.media_type,
    Document.size_bytes,
    Document.sha256,
    Document.status,
    Document.error,
    Document.chunk_count,
    Document.text_chars,
    Document.product_id,
    Document.owner_id,
    Document.job_id,
    Document.version,
    Document.created_at,
    Document.updated_at,
    Document.processed_at,
)
SORTING = Sorting(
    {
        "created_at": SortField(Document.created_at, "datetime"),
        "title": SortField(Document.title, "str"),
        "size_bytes": SortField(Document.size_bytes, "int"),
    },
    default="-created_at",
    tiebreak=Document.id,
)
CHUNK_COLUMNS = (DocumentChunk.index, DocumentChunk.start_char, DocumentChunk.end_char, DocumentChunk.text)
CHUNK_SORTING = Sorting(
    {"index": SortField(DocumentChunk.index, "int")}, default="index", tiebreak=DocumentChunk.id
)


def readable(principal: Principal) -> ColumnElement[bool]:
    if principal.is_admin:
        return true()
    readable_products = select(Product.id).where(access.LIVE, access.readable_by(principal.user_id))
    unattached_own = Document.product_id.is_(None) & (Document.owner_id == principal.user_id)
    return unattached_own | Document.product_id.in_(readable_products.correlate(None))


def visible(principal: Principal, filters: DocumentFilters | None = None) -> Select[*tuple[Any, ...]]:
    statement = select(*COLUMNS).where(readable(principal))
    if filters is not None:
        if filters.product_id is not None:
            statement = statement.where(Document.product_id == filters.product_id)
        if filters.status is not None:
            statement = statement.where(Document.status == filters.status)
    return statement


async def list_page(
    session: AsyncSession, statement: Select[*tuple[Any, ...]], params: ListParams, sorting: Sorting
) -> Page[Rows]:
    total = (
        await session.execute(select(func.count()).select_from(statement.order_by(None).subquery()))
    ).scalar_one()
    page = params.page
    if page.offset >= total:
        return Page([], total, page)
    ordered = statement.order_by(*sorting.order_by(params.sort)).limit(page.limit).offset(page.offset)
    return Page(list((await session.execute(ordered)).all()), total, page)


async def list_after(
    session: AsyncSession, statement: Select[*tuple[Any, ...]], params: ListParams, sorting: Sorting
) -> tuple[list[Rows], str | None]:
    after = sorting.after_cursor(params.cursor, params.sort)
    if after is not None:
        statement = statement.where(after)
    ordered = statement.order_by(*sorting.order_by(params.sort)).limit(params.per_page + 1)
    return sorting.cut(list((await session.execute(ordered)).all()), params.sort, params.per_page)


async def get_readable(
    session: AsyncSession, principal: Principal, document_id: uuid.UUID, *, for_update: bool = False
) -> Rows | None:
    statement = visible(principal).where(Document.id == document_id)
    if for_update:
        statement = statement.with_for_update(of=Document)
    return (await session.execute(statement)).one_or_none()


async def get(session: AsyncSession, document_id: uuid.UUID, *, for_update: bool = False) -> Rows | None:
    """A document whoever asks (the processing job's view)."""
    statement = select(*COLUMNS).where(Document.id == document_id)
    if for_update:
        statement = statement.with_for_update(of=Document)
    return (await session.execute(statement)).one_or_none()


def chunks_of(document_id: uuid.UUID) -> Select[*tuple[Any, ...]]:
    return select(*CHUNK_COLUMNS).where(DocumentChunk.document_id == document_id)


async def lock_hash(session: AsyncSession, sha256: str) -> None:
    """Serialise, until the transaction ends, every insert and delete of documents with
    this hash: the last delete of a hash removes the stored file, which must not happen
    while an upload of the same bytes is adding a row that needs it. SQLite's write
    transaction is exclusive already."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
            {"key": f"keel.documents.blob:{sha256}"},
        )


async def hash_in_use(session: AsyncSession, sha256: str, *, besides: uuid.UUID) -> bool:
    statement = select(exists().where(Document.sha256 == sha256, Document.id != besides))
    return bool((await session.execute(statement)).scalar_one())


async def insert_document(session: AsyncSession, values: dict[str, Any]) -> Rows:
    return (await session.execute(insert(Document).values(**values).returning(*COLUMNS))).one()


async def update_document(
    session: AsyncSession, document_id: uuid.UUID, values: dict[str, Any], now: datetime
) -> Rows | None:
    statement = (
        update(Document)
        .where(Document.id == document_id)
        .values(**values, version=Document.version + 1, updated_at=now)
        .returning(*COLUMNS)
    )
    return (await session.execute(statement)).one_or_none()


async def set_job(session: AsyncSession, document_id: uuid.UUID, job_id: uuid.UUID) -> Rows:
    statement = update(Document).where(Document.id == document_id).values(job_id=job_id).returning(*COLUMNS)
    return (await session.execute(statement)).one()


async def replace_chunks(
    session: AsyncSession, document_id: uuid.UUID, chunks: Sequence[dict[str, Any]]
) -> None:
    """The document's chunks become ``chunks``: a rerun after a crash replaces rather
    than adds."""
    await delete_chunks(session, document_id)
    if chunks:
        rows = [{**chunk, "document_id": document_id} for chunk in chunks]
        await session.execute(insert(DocumentChunk), rows)


async def delete_chunks(session: AsyncSession, document_id: uuid.UUID) -> None:
    # Explicit rather than left to ON DELETE CASCADE: SQLite enforces foreign keys only
    # when the connection enables them, and the search index follows the chunk rows.
    await session.execute(delete(DocumentChunk).where(DocumentChunk.document_id == document_id))


async def delete_document(session: AsyncSession, document_id: uuid.UUID) -> None:
    await delete_chunks(session, document_id)
    await session.execute(delete(Document).where(Document.id == document_id))
