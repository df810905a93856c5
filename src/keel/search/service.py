"""Search over document chunks and products: SQLite FTS5 (bm25, ``snippet()``) or PostgreSQL
``tsvector`` with ``websearch_to_tsquery`` (``ts_rank``, ``ts_headline``).

What the user types is never query syntax. On PostgreSQL ``websearch_to_tsquery``
accepts any text. FTS5's MATCH has a grammar (AND, NEAR, quotes, parentheses,
column filters), so each word becomes a quoted string instead: the words must all
appear, in any order, and nothing typed can be an operator.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    SQLColumnExpression,
    Uuid,
    column,
    desc,
    func,
    literal_column,
    select,
    table,
)
from sqlalchemy.ext.asyncio import AsyncSession

from keel.documents import repository as documents
from keel.documents.models import Document, DocumentChunk, Status
from keel.platform.http.pagination import Page, PageParams
from keel.platform.security.principal import Principal
from keel.products.models import Product
from keel.sharing import access

MAX_TERMS = 16
# Markers around matched words in a snippet: plain text, safe to show anywhere
# (no markup to escape).
MARK = "**"
SNIPPET_WORDS = 24
_CONFIG: ColumnElement[Any] = literal_column("'keel_search'::regconfig")
_CHUNKS_FTS = table("document_chunks_fts", column("rowid"))
_PRODUCTS_FTS = table("products_fts", column("rowid"))
_PRODUCT_KEYS = table("product_search_keys", column("id"), column("product_id", Uuid()))


def fts5_query(q: str) -> str | None:
    """Each word with a letter or digit as an FTS5 string: ``AND ( "`` → None (nothing to
    find), ``café au "lait"`` → ``"café" "au" "lait"``."""
    words = [word for word in q.split() if any(char.isalnum() for char in word)][:MAX_TERMS]
    if not words:
        return None
    return " ".join('"' + word.replace('"', '""') + '"' for word in words)


@dataclass(frozen=True, slots=True)
class _Query:
    where: ColumnElement[bool]
    snippet: ColumnElement[str]
    score: ColumnElement[float]


def _fts5(index: str, q: str, *weights: float) -> _Query | None:
    match = fts5_query(q)
    if match is None:
        return None
    # Column -1: the best passage of whichever column matched.
    snippet = f"snippet({index}, -1, '{MARK}', '{MARK}', '…', {SNIPPET_WORDS})"
    rank = f"bm25({index}{''.join(f', {weight}' for weight in weights)})"
    return _Query(
        where=literal_column(index).op("MATCH")(match),
        snippet=literal_column(snippet),
        # bm25() is lower for better matches; the API says higher is better.
        score=-literal_column(rank),
    )


def _tsquery(vector: ColumnElement[Any], text: SQLColumnExpression[str], q: str) -> _Query:
    query = func.websearch_to_tsquery(_CONFIG, q)
    options = f"StartSel={MARK}, StopSel={MARK}, MaxWords={SNIPPET_WORDS}, MinWords=8, MaxFragments=1"
    return _Query(
        where=vector.op("@@")(query),
        snippet=func.ts_headline(_CONFIG, text, query, options),
        score=func.ts_rank(vector, query),
    )


# The stored tsvector columns (PostgreSQL, migration 0010) under the GIN indexes: ranking
# reads them instead of parsing every matching text again.
CHUNK_VECTOR: ColumnElement[Any] = literal_column("document_chunks.search_vector")
PRODUCT_VECTOR: ColumnElement[Any] = literal_column("products.search_vector")
# The name first, so a headline can show either.
_PRODUCT_TEXT = Product.name.op("||")(" — ").op("||")(func.coalesce(Product.description, ""))


def _is_sqlite(session: AsyncSession) -> bool:
    return session.get_bind().dialect.name == "sqlite"


async def _page(
    session: AsyncSession,
    statement: Select[*tuple[Any, ...]] | None,
    tiebreak: SQLColumnExpression[Any],
    params: PageParams,
    render: Callable[[Any], dict[str, Any]],
) -> Page[dict[str, Any]]:
    if statement is None:
        return Page([], 0, params)
    total = (await session.execute(select(func.count()).select_from(statement.subquery()))).scalar_one()
    if params.offset >= total:
        return Page([], total, params)
    ordered = statement.order_by(desc("score"), tiebreak).limit(params.limit).offset(params.offset)
    rows = (await session.execute(ordered)).all()
    return Page([render(row) for row in rows], total, params)


def chunks_statement(principal: Principal, q: str, *, sqlite: bool) -> Select[*tuple[Any, ...]] | None:
    """The chunks of ready documents the principal may see that contain every word
    (None when the words hold nothing to find)."""
    search = _fts5("document_chunks_fts", q) if sqlite else _tsquery(CHUNK_VECTOR, DocumentChunk.text, q)
    if search is None:
        return None
    statement = select(
        DocumentChunk.document_id,
        Document.title,
        DocumentChunk.index,
        DocumentChunk.start_char,
        DocumentChunk.end_char,
        search.snippet.label("snippet"),
        search.score.label("score"),
    )
    if sqlite:
        statement = statement.select_from(_CHUNKS_FTS).join(
            DocumentChunk, DocumentChunk.id == _CHUNKS_FTS.c.rowid
        )
    return statement.join(Document, Document.id == DocumentChunk.document_id).where(
        search.where, Document.status == Status.READY.value, documents.readable(principal)
    )


def products_statement(principal: Principal, q: str, *, sqlite: bool) -> Select[*tuple[Any, ...]] | None:
    """The live products the principal may see whose name and description hold every
    word (None when the words hold nothing to find)."""
    # bm25 weights per column: a match in the name counts more than one in the description.
    search = _fts5("products_fts", q, 4.0, 1.0) if sqlite else _tsquery(PRODUCT_VECTOR, _PRODUCT_TEXT, q)
    if search is None:
        return None
    statement = select(Product.id, Product.name, search.snippet.label("snippet"), search.score.label("score"))
    if sqlite:
        statement = (
            statement.select_from(_PRODUCTS_FTS)
            .join(_PRODUCT_KEYS, _PRODUCT_KEYS.c.id == _PRODUCTS_FTS.c.rowid)
            .join(Product, Product.id == _PRODUCT_KEYS.c.product_id)
        )
    return statement.where(search.where, access.product_readable(principal))


async def search_chunks(
    session: AsyncSession, principal: Principal, *, q: str, params: PageParams
) -> Page[dict[str, Any]]:
    """:func:`chunks_statement`'s rows, best match first."""
    statement = chunks_statement(principal, q, sqlite=_is_sqlite(session))
    return await _page(session, statement, DocumentChunk.id, params, _render_chunk)


async def search_products(
    session: AsyncSession, principal: Principal, *, q: str, params: PageParams
) -> Page[dict[str, Any]]:
    """:func:`products_statement`'s rows, best match first."""
    statement = products_statement(principal, q, sqlite=_is_sqlite(session))
    return await _page(session, statement, Product.id, params, _render_product)


def _render_chunk(row: Any) -> dict[str, Any]:
    document_id, title, index, start, end, snippet, score = row
    return {
        "type": "chunk",
        "document_id": str(document_id),
        "document_title": title,
        "chunk_index": index,
        "start_char": start,
        "end_char": end,
        "snippet": snippet,
        "score": round(float(score), 6),
    }


def _render_product(row: Any) -> dict[str, Any]:
    product_id, name, snippet, score = row
    return {
        "type": "product",
        "product_id": str(product_id),
        "name": name,
        "snippet": snippet,
        "score": round(float(score), 6),
    }
