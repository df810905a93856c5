"""The full-text index over document chunks that migration 0007 builds on each backend:
accents folded, kept in step with inserts, updates and cascaded deletes."""

from __future__ import annotations

import uuid

from fastapi import FastAPI
from sqlalchemy import Uuid, bindparam, delete, text, update

from keel.documents.models import Document, DocumentChunk
from keel.platform.resources import Resources
from tests.identity import Accounts

# Scoped to one document: on PostgreSQL the run's database holds other modules' chunks.
SQLITE_MATCH = text(
    "SELECT c.id FROM document_chunks_fts f JOIN document_chunks c ON c.id = f.rowid "
    "WHERE document_chunks_fts MATCH :q AND c.document_id = :document ORDER BY c.id"
)
POSTGRES_MATCH = text(
    "SELECT id FROM document_chunks WHERE to_tsvector('keel_search'::regconfig, text) "
    "@@ websearch_to_tsquery('keel_search'::regconfig, :q) AND document_id = :document ORDER BY id"
)


async def matches(resources: Resources, query: str, document_id: uuid.UUID) -> list[int]:
    statement = SQLITE_MATCH if resources.db.is_sqlite else POSTGRES_MATCH
    bound = statement.bindparams(bindparam("document", type_=Uuid()))
    async with resources.db.reader() as session:
        return list((await session.execute(bound, {"q": query, "document": document_id})).scalars())


async def test_chunks_are_found_without_accents_and_leave_with_their_document(
    app: FastAPI, accounts: Accounts
) -> None:
    resources: Resources = app.state.resources
    owner = await accounts.create(login=False)
    document_id = uuid.uuid4()
    async with resources.db.writer() as session:
        session.add(
            Document(
                id=document_id,
                owner_id=owner.id,
                title="Menu",
                filename="menu.txt",
                media_type="text/plain",
                size_bytes=40,
                sha256="0" * 64,
            )
        )
        await session.flush()
        session.add_all(
            [
                DocumentChunk(
                    document_id=document_id, index=0, start_char=0, end_char=20, text="Un café crème"
                ),
                DocumentChunk(document_id=document_id, index=1, start_char=20, end_char=40, text="Thé vert"),
            ]
        )
        await session.commit()

    cafe = await matches(resources, "cafe", document_id)
    assert len(cafe) == 1
    assert await matches(resources, "CAFÉ", document_id) == cafe

    async with resources.db.writer() as session:
        await session.execute(
            update(DocumentChunk).where(DocumentChunk.id == cafe[0]).values(text="Chocolat")
        )
        await session.commit()
    assert await matches(resources, "cafe", document_id) == []
    assert await matches(resources, "chocolat", document_id) == cafe

    async with resources.db.writer() as session:
        await session.execute(delete(Document).where(Document.id == document_id))
        await session.commit()
    assert await matches(resources, "chocolat", document_id) == []
    assert await matches(resources, "vert", document_id) == []
