"""Streaming export: CSV or NDJSON, read from the database in keyset batches.

Each batch is its own short query in its own session (the request's transaction has
ended by the time the body streams), so memory and connection time stay bounded
whatever the number of rows.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.responses import StreamingResponse

from keel.platform.http.etag import PRIVATE_NO_CACHE
from keel.platform.security.principal import Principal
from keel.products import repository
from keel.products.schemas import ExportFormat, ProductFilters
from keel.products.service import render

BATCH_SIZE = 1000
CSV_COLUMNS = (
    "id",
    "name",
    "description",
    "price",
    "currency",
    "stock",
    "category",
    "tags",
    "folder_id",
    "owner_id",
    "version",
    "created_at",
    "updated_at",
)
MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "ndjson": "application/x-ndjson"}
# A spreadsheet runs a cell starting with one of these as a formula (CSV injection).
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_FORMULA_PREFIXES):
        return "'" + value
    if isinstance(value, list):
        return _cell(orjson.dumps(value).decode())
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return "" if value is None else value


def _csv(rows: Iterable[dict[str, Any]], header: bool) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    if header:
        writer.writerow(CSV_COLUMNS)
    writer.writerows([_cell(row[column]) for column in CSV_COLUMNS] for row in rows)
    return buffer.getvalue().encode()


def _ndjson(rows: Iterable[dict[str, Any]]) -> bytes:
    # default=str: asyncpg returns ids as its own uuid.UUID subclass, which orjson refuses.
    return b"".join(orjson.dumps(row, default=str, option=orjson.OPT_UTC_Z) + b"\n" for row in rows)


async def batches(
    sessionmaker: Callable[[], AsyncSession], principal: Principal, filters: ProductFilters
) -> AsyncIterator[list[dict[str, Any]]]:
    """Every visible product matching the filters, oldest first, a batch at a time."""
    order = repository.SORTING.parse("created_at", None, None)
    statement, parameters = repository.visible(principal, filters)
    after = None
    while True:
        query = statement
        if after is not None:
            query = query.where(repository.SORTING.after(order, [after.created_at], after.id))
        query = query.order_by(*repository.SORTING.order_by(order)).limit(BATCH_SIZE)
        async with sessionmaker() as session:
            rows = list((await session.execute(query, parameters)).all())
        if not rows:
            return
        yield [render(row) for row in rows]
        if len(rows) < BATCH_SIZE:
            return
        after = rows[-1]


async def encoded(
    sessionmaker: Callable[[], AsyncSession],
    principal: Principal,
    *,
    filters: ProductFilters,
    format: ExportFormat,
) -> AsyncIterator[tuple[int, bytes]]:
    """The export's bytes, a batch at a time, each with the number of rows it holds: the
    body of :func:`stream` and the file of a ``products.export`` job."""
    first = True
    async for batch in batches(sessionmaker, principal, filters):
        yield len(batch), _csv(batch, header=first) if format == "csv" else _ndjson(batch)
        first = False
    if first and format == "csv":
        yield 0, _csv([], header=True)


def stream(
    sessionmaker: async_sessionmaker[AsyncSession],
    principal: Principal,
    *,
    filters: ProductFilters,
    format: ExportFormat,
) -> StreamingResponse:
    async def body() -> AsyncIterator[bytes]:
        async for _rows, chunk in encoded(sessionmaker, principal, filters=filters, format=format):
            yield chunk

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    headers = {
        "Content-Disposition": f'attachment; filename="products-{stamp}.{format}"',
        "Cache-Control": PRIVATE_NO_CACHE,
    }
    return StreamingResponse(body(), media_type=MEDIA_TYPES[format], headers=headers)
