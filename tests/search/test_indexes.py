"""The full-text indexes the migrations build on each backend (0007 over document
chunks, 0008 over products): accents folded, kept in step with inserts, updates and
cascaded deletes, and used by the search queries' plans."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import (
    Select,
    Uuid,
    bindparam,
    delete,
    text,
    update,
)

from keel.documents.models import Document, DocumentChunk
from keel.platform.resources import Resources
from keel.platform.security.principal import Principal
from keel.products.models import Product
from keel.search import service
from keel.users.models import Role, User
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


PRODUCT_SQLITE_MATCH = text(
    "SELECT k.product_id FROM products_fts f JOIN product_search_keys k ON k.id = f.rowid "
    "WHERE products_fts MATCH :q AND k.product_id = :product"
)
PRODUCT_POSTGRES_MATCH = text(
    "SELECT id FROM products WHERE id = :product AND "
    "(setweight(to_tsvector('keel_search'::regconfig, name), 'A') || "
    "setweight(to_tsvector('keel_search'::regconfig, coalesce(description, '')), 'B')) "
    "@@ websearch_to_tsquery('keel_search'::regconfig, :q)"
)


async def product_matches(resources: Resources, query: str, product_id: uuid.UUID) -> bool:
    statement = PRODUCT_SQLITE_MATCH if resources.db.is_sqlite else PRODUCT_POSTGRES_MATCH
    bound = statement.bindparams(bindparam("product", type_=Uuid()))
    async with resources.db.reader() as session:
        return (await session.execute(bound, {"q": query, "product": product_id})).first() is not None


async def test_products_are_indexed_through_updates_and_cascaded_deletes(
    app: FastAPI, accounts: Accounts
) -> None:
    resources: Resources = app.state.resources
    owner = await accounts.create(login=False)
    product_id = uuid.uuid4()
    async with resources.db.writer() as session:
        session.add(
            Product(
                id=product_id,
                owner_id=owner.id,
                name="Théière",
                description="En fonte émaillée",
                price_cents=100,
                currency="EUR",
            )
        )
        await session.commit()
    assert await product_matches(resources, "theiere", product_id)
    assert await product_matches(resources, "EMAILLEE", product_id)

    async with resources.db.writer() as session:
        await session.execute(
            update(Product).where(Product.id == product_id).values(name="Bouilloire", description=None)
        )
        await session.commit()
    assert not await product_matches(resources, "theiere", product_id)
    assert not await product_matches(resources, "emaillee", product_id)
    assert await product_matches(resources, "bouilloire", product_id)

    # Deleting the owner deletes the product by cascade, and its index entry with it.
    async with resources.db.writer() as session:
        await session.execute(delete(User).where(User.id == owner.id))
        await session.commit()
    assert not await product_matches(resources, "bouilloire", product_id)
    if resources.db.is_sqlite:
        async with resources.db.reader() as session:
            keys = text("SELECT count(*) FROM product_search_keys WHERE product_id = :product")
            bound = keys.bindparams(bindparam("product", type_=Uuid()))
            assert (await session.execute(bound, {"product": product_id})).scalar_one() == 0


ADMIN = Principal(user_id=uuid.uuid4(), role=Role.ADMIN, plan="free", permissions=frozenset())


# PostgreSQL plans follow statistics: on a near-empty table a scan wins and the plan says
# nothing about the index. These fill the table in the test's own transaction (rolled
# back, statistics included) so the planner sees a realistic table.
POSTGRES_FILL = {
    "chunks": (
        "INSERT INTO documents (id, owner_id, title, filename, media_type, size_bytes, sha256,"
        " status, chunk_count, version) VALUES (CAST(:document AS uuid), CAST(:owner AS uuid),"
        " 't', 't.txt', 'text/plain', 1, repeat('0', 64), 'ready', 0, 1)",
        "INSERT INTO document_chunks (document_id, index, start_char, end_char, text)"
        " SELECT CAST(:document AS uuid), g, 0, 1, 'filler text number ' || g || ' ' || md5(g::text)"
        " FROM generate_series(1, 5000) AS g",
        "ANALYZE documents",
        "ANALYZE document_chunks",
    ),
    "products": (
        "INSERT INTO products (id, owner_id, name, description, price_cents, currency, stock, tags,"
        " version) SELECT gen_random_uuid(), CAST(:owner AS uuid), 'Filler ' || md5(g::text), 'number ' || g,"
        " 100, 'EUR', 1, '[]', 1 FROM generate_series(1, 5000) AS g",
        "ANALYZE products",
    ),
}


@pytest.mark.parametrize(
    ("kind", "build", "index"),
    [
        ("chunks", service.chunks_statement, ("document_chunks_fts", "ix_document_chunks_search")),
        ("products", service.products_statement, ("products_fts", "ix_products_search")),
    ],
)
async def test_search_queries_use_their_index(
    app: FastAPI,
    accounts: Accounts,
    kind: str,
    build: Callable[..., Select[Any] | None],
    index: tuple[str, str],
) -> None:
    resources: Resources = app.state.resources
    owner = await accounts.create(login=False)
    statement = build(ADMIN, "café crème", sqlite=resources.db.is_sqlite)
    assert statement is not None
    async with resources.db.writer() as session:
        sql = statement.compile(dialect=session.get_bind().dialect, compile_kwargs={"literal_binds": True})
        if resources.db.is_sqlite:
            plan = [row[-1] for row in (await session.execute(text(f"EXPLAIN QUERY PLAN {sql}"))).all()]
            assert any("VIRTUAL TABLE INDEX" in line and index[0] in line for line in plan), plan
            return
        values = {"owner": str(owner.id), "document": str(uuid.uuid4())}
        for fill in POSTGRES_FILL[kind]:
            await session.execute(text(fill), {key: values[key] for key in values if f":{key}" in fill})
        # Rows written in this transaction wait in the GIN index's pending list, which
        # the planner prices high; with scans off it shows whether the index can serve.
        await session.execute(text("SET LOCAL enable_seqscan = off"))
        plan = list((await session.execute(text(f"EXPLAIN {sql}"))).scalars())
        await session.rollback()
    assert any(index[1] in line for line in plan), plan
