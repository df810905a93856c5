"""Queries for products, in SQLAlchemy Core over typed rows (the list is the hottest
read in the service; the ORM's identity map and instrumentation buy nothing here).

Every read goes through :func:`keel.sharing.access.product_readable`, so a product the
caller may not see is simply not found.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ColumnElement, Row, Select, String, func, insert, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from keel.platform.db.search import LIKE_ESCAPE, substring_pattern
from keel.platform.http.listing import ListParams, SortField, Sorting
from keel.platform.http.pagination import Page
from keel.platform.security.principal import Principal
from keel.products.models import Product
from keel.products.schemas import ProductFilters, cents
from keel.sharing.access import product_readable

COLUMNS = (
    Product.id,
    Product.owner_id,
    Product.folder_id,
    Product.name,
    Product.description,
    Product.price_cents,
    Product.currency,
    Product.stock,
    Product.category,
    Product.tags,
    Product.version,
    Product.created_at,
    Product.updated_at,
)

SORTING = Sorting(
    {
        "name": SortField(Product.name, "str"),
        "price": SortField(Product.price_cents, "int"),
        "stock": SortField(Product.stock, "int"),
        "created_at": SortField(Product.created_at, "datetime"),
        "updated_at": SortField(Product.updated_at, "datetime"),
    },
    default="-created_at",
    tiebreak=Product.id,
)

ProductRow = Row[*tuple[Any, ...]]


def visible(principal: Principal, filters: ProductFilters | None = None) -> Select[*tuple[Any, ...]]:
    """Live products the principal may read, filtered: the base of lists and exports."""
    statement = select(*COLUMNS).where(product_readable(principal))
    if filters is None:
        return statement
    if filters.q:
        pattern = substring_pattern(filters.q)
        # ILIKE on PostgreSQL (served by the trigram indexes), lower() LIKE on SQLite.
        statement = statement.where(
            Product.name.ilike(pattern, escape=LIKE_ESCAPE)
            | Product.description.ilike(pattern, escape=LIKE_ESCAPE)
        )
    if filters.category is not None:
        statement = statement.where(Product.category == filters.category)
    if filters.min_price is not None:
        statement = statement.where(Product.price_cents >= cents(filters.min_price))
    if filters.max_price is not None:
        statement = statement.where(Product.price_cents <= cents(filters.max_price))
    if filters.folder_id is not None:
        statement = statement.where(Product.folder_id == filters.folder_id)
    if filters.tag is not None:
        statement = statement.where(_has_tag(filters.tag))
    if filters.in_stock is not None:
        statement = statement.where(Product.stock > 0 if filters.in_stock else Product.stock == 0)
    if filters.created_after is not None:
        statement = statement.where(Product.created_at >= filters.created_after)
    if filters.created_before is not None:
        statement = statement.where(Product.created_at < filters.created_before)
    return statement


class _HasTag(FunctionElement[bool]):
    """``tags`` contains a tag: JSONB containment on PostgreSQL (served by the GIN
    index), ``json_each`` on SQLite."""

    type = Boolean()
    inherit_cache = True
    name = "has_tag"


@compiles(_HasTag, "postgresql")
def _has_tag_postgresql(element: _HasTag, compiler: SQLCompiler, **kw: Any) -> str:
    column, tag = list(element.clauses)
    return (
        f"{compiler.process(column, **kw)} @> jsonb_build_array(CAST({compiler.process(tag, **kw)} AS TEXT))"
    )


@compiles(_HasTag, "sqlite")
def _has_tag_sqlite(element: _HasTag, compiler: SQLCompiler, **kw: Any) -> str:
    column, tag = list(element.clauses)
    # Both parts are compiled SQL elements; the tag is a bound parameter.
    return (
        f"EXISTS (SELECT 1 FROM json_each({compiler.process(column, **kw)}) "  # noqa: S608
        f"WHERE json_each.value = {compiler.process(tag, **kw)})"
    )


def _has_tag(tag: str) -> ColumnElement[bool]:
    return _HasTag(Product.tags, literal(tag, String()))


async def list_page(
    session: AsyncSession, statement: Select[*tuple[Any, ...]], params: ListParams
) -> Page[ProductRow]:
    """Page mode: the total is counted by the database; rows past the end are not fetched."""
    connection = await session.connection()
    total = (
        await connection.execute(select(func.count()).select_from(statement.order_by(None).subquery()))
    ).scalar_one()
    page = params.page
    if page.offset >= total:
        return Page([], total, page)
    ordered = statement.order_by(*SORTING.order_by(params.sort)).limit(page.limit).offset(page.offset)
    rows = list((await connection.execute(ordered)).all())
    return Page(rows, total, page)


async def list_after(
    session: AsyncSession, statement: Select[*tuple[Any, ...]], params: ListParams
) -> tuple[list[ProductRow], str | None]:
    """Cursor mode: one page after the cursor, and the next page's cursor if there is one."""
    if params.cursor:
        values, last_id = SORTING.decode_cursor(params.cursor, params.sort)
        statement = statement.where(SORTING.after(params.sort, values, last_id))
    ordered = statement.order_by(*SORTING.order_by(params.sort)).limit(params.per_page + 1)
    rows = list((await (await session.connection()).execute(ordered)).all())
    if len(rows) <= params.per_page:
        return rows, None
    rows = rows[: params.per_page]
    return rows, SORTING.encode_cursor(params.sort, rows[-1]._mapping)


async def get_readable(
    session: AsyncSession, principal: Principal, product_id: uuid.UUID, *, for_update: bool = False
) -> ProductRow | None:
    statement = select(*COLUMNS).where(Product.id == product_id, product_readable(principal))
    if for_update:
        # PostgreSQL: a row lock, so a concurrent writer waits and then sees the new
        # version. SQLite: the request already holds the database's write lock.
        statement = statement.with_for_update(of=Product)
    return (await session.execute(statement)).one_or_none()


async def insert_product(session: AsyncSession, values: dict[str, Any]) -> ProductRow:
    result = await session.execute(insert(Product).values(**values).returning(*COLUMNS))
    return result.one()


async def update_product(
    session: AsyncSession, product_id: uuid.UUID, version: int, values: dict[str, Any], now: datetime
) -> ProductRow | None:
    """Apply ``values`` if the product is still at ``version``; the version is bumped in
    the same statement, so of two writers that read the same version only one wins."""
    result = await session.execute(
        update(Product)
        .where(Product.id == product_id, Product.version == version, Product.deleted_at.is_(None))
        .values(**values, version=Product.version + 1, updated_at=now)
        .returning(*COLUMNS)
    )
    return result.one_or_none()


async def soft_delete(session: AsyncSession, product_id: uuid.UUID, version: int, now: datetime) -> bool:
    result = await session.execute(
        update(Product)
        .where(Product.id == product_id, Product.version == version, Product.deleted_at.is_(None))
        .values(deleted_at=now, version=Product.version + 1, updated_at=now)
        .returning(Product.id)
    )
    return result.one_or_none() is not None


async def restore(session: AsyncSession, product_id: uuid.UUID, now: datetime) -> ProductRow | None:
    result = await session.execute(
        update(Product)
        .where(Product.id == product_id, Product.deleted_at.is_not(None))
        .values(deleted_at=None, version=Product.version + 1, updated_at=now)
        .returning(*COLUMNS)
    )
    return result.one_or_none()


async def soft_delete_in_folders(
    session: AsyncSession, folder_ids: Select[*tuple[Any, ...]], now: datetime
) -> int:
    """Soft-delete every live product directly in these folders; how many."""
    result = await session.execute(
        update(Product)
        .where(Product.folder_id.in_(folder_ids), Product.deleted_at.is_(None))
        .values(deleted_at=now, version=Product.version + 1, updated_at=now)
        .returning(Product.id)
    )
    return len(result.all())


async def any_live_in_folders(session: AsyncSession, folder_ids: Select[*tuple[Any, ...]]) -> bool:
    statement = (
        select(Product.id).where(Product.folder_id.in_(folder_ids), Product.deleted_at.is_(None)).limit(1)
    )
    return (await session.execute(statement)).first() is not None
