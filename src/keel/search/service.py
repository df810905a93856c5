"""Search over document chunks: SQLite FTS5 (bm25, ``snippet()``) or PostgreSQL
``tsvector`` with ``websearch_to_tsquery`` (``ts_rank``, ``ts_headline``).

What the user types is never query syntax. On PostgreSQL ``websearch_to_tsquery``
accepts any text. FTS5's MATCH has a grammar (AND, NEAR, quotes, parentheses,
column filters), so each word becomes a quoted string instead: the words must all
appear, in any order, and nothing typed can be an operator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, column, desc, func, literal_column, select, table
from sqlalchemy.ext.asyncio import AsyncSession

from keel.documents import repository as documents
from keel.documents.models import Document, DocumentChunk, Status
from keel.platform.http.pagination import Page, PageParams
from keel.platform.security.principal import Principal

MAX_TERMS = 16
# Markers around matched words in a snippet: plain text, safe to show anywhere
# (no markup to escape).
MARK = "**"
SNIPPET_WORDS = 24
_CONFIG: ColumnElement[Any] = literal_column("'keel_search'::regconfig")
_FTS = table("document_chunks_fts", column("rowid"))


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
    join_fts: bool


def _sqlite(q: str) -> _Query | None:
    match = fts5_query(q)
    if match is None:
        return None
    return _Query(
        where=literal_column("document_chunks_fts").op("MATCH")(match),
        snippet=literal_column(f"snippet(document_chunks_fts, 0, '{MARK}', '{MARK}', '…', {SNIPPET_WORDS})"),
        # bm25() is lower for better matches; the API says higher is better.
        score=-literal_column("bm25(document_chunks_fts)"),
        join_fts=True,
    )


def _postgres(q: str) -> _Query:
    query = func.websearch_to_tsquery(_CONFIG, q)
    # The expression of the GIN index (migration 0007), so the planner uses it.
    vector = func.to_tsvector(_CONFIG, DocumentChunk.text)
    options = f"StartSel={MARK}, StopSel={MARK}, MaxWords={SNIPPET_WORDS}, MinWords=8, MaxFragments=1"
    return _Query(
        where=vector.op("@@")(query),
        snippet=func.ts_headline(_CONFIG, DocumentChunk.text, query, options),
        score=func.ts_rank(vector, query),
        join_fts=False,
    )


def _statement(principal: Principal, search: _Query) -> Select[*tuple[Any, ...]]:
    statement = select(
        DocumentChunk.document_id,
        Document.title,
        DocumentChunk.index,
        DocumentChunk.start_char,
        DocumentChunk.end_char,
        search.snippet.label("snippet"),
        search.score.label("score"),
    )
    if search.join_fts:
        statement = statement.select_from(_FTS).join(DocumentChunk, DocumentChunk.id == _FTS.c.rowid)
    return statement.join(Document, Document.id == DocumentChunk.document_id).where(
        search.where, Document.status == Status.READY.value, documents.readable(principal)
    )


async def search_chunks(
    session: AsyncSession, principal: Principal, *, q: str, params: PageParams
) -> Page[dict[str, Any]]:
    """The chunks of ready documents the principal may see that contain every word,
    best match first."""
    is_sqlite = session.get_bind().dialect.name == "sqlite"
    search = _sqlite(q) if is_sqlite else _postgres(q)
    if search is None:
        return Page([], 0, params)
    statement = _statement(principal, search)
    total = (await session.execute(select(func.count()).select_from(statement.subquery()))).scalar_one()
    if params.offset >= total:
        return Page([], total, params)
    ordered = statement.order_by(desc("score"), DocumentChunk.id).limit(params.limit).offset(params.offset)
    rows = (await session.execute(ordered)).all()
    return Page([_render(row) for row in rows], total, params)


def _render(row: Any) -> dict[str, Any]:
    document_id, title, index, start, end, snippet, score = row
    return {
        "document_id": str(document_id),
        "document_title": title,
        "chunk_index": index,
        "start_char": start,
        "end_char": end,
        "snippet": snippet,
        "score": round(float(score), 6),
    }
