"""Queries for products, in SQLAlchemy Core over typed rows (the list is the hottest
read in the service; the ORM's identity map and instrumentation buy nothing here).

Every read goes through the visibility rules of :mod:`keel.sharing.access`, so a product the
caller may not see is simply not found.
"""

from __future__ import annotations

import uuid
from collections.abc import Hashable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Row,
    Select,
    String,
    Uuid,
    bindparam,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from keel.platform.cache import TotalCache
from keel.platform.db.search import LIKE_ESCAPE, substring_pattern
from keel.platform.http.listing import ListParams, SortField, Sorting, SortKey
from keel.platform.http.pagination import Page
from keel.platform.security.principal import Principal
from keel.products.models import Product
from keel.products.schemas import ProductFilters, cents
from keel.sharing import access

# The order service.render() unpacks.
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


def filter_clauses(filters: ProductFilters | None) -> list[ColumnElement[bool]]:
    if filters is None:
        return []
    clauses: list[ColumnElement[bool]] = []
    if filters.q:
        pattern = substring_pattern(filters.q)
        # ILIKE on PostgreSQL (served by the trigram indexes), lower() LIKE on SQLite.
        clauses.append(
            Product.name.ilike(pattern, escape=LIKE_ESCAPE)
            | Product.description.ilike(pattern, escape=LIKE_ESCAPE)
        )
    if filters.category is not None:
        clauses.append(Product.category == filters.category)
    if filters.min_price is not None:
        clauses.append(Product.price_cents >= cents(filters.min_price))
    if filters.max_price is not None:
        clauses.append(Product.price_cents <= cents(filters.max_price))
    if filters.folder_id is not None:
        clauses.append(Product.folder_id == filters.folder_id)
    if filters.tag is not None:
        clauses.append(_has_tag(filters.tag))
    if filters.in_stock is not None:
        clauses.append(Product.stock > 0 if filters.in_stock else Product.stock == 0)
    if filters.created_after is not None:
        clauses.append(Product.created_at >= filters.created_after)
    if filters.created_before is not None:
        clauses.append(Product.created_at < filters.created_before)
    return clauses


def viewer(principal: Principal) -> dict[str, Any]:
    """The execution parameters of statements built on :data:`access.VIEWER`."""
    return {access.VIEWER_KEY: principal.user_id}


def _readable(admin: bool) -> ColumnElement[bool]:
    return access.LIVE if admin else access.LIVE & access.readable_by(access.VIEWER)


def visible(principal: Principal, filters: ProductFilters | None = None) -> Select[*tuple[Any, ...]]:
    """Live products the principal may read, filtered: the base of exports. Execute with
    :func:`viewer`'s parameters."""
    return select(*COLUMNS).where(_readable(principal.is_admin), *filter_clauses(filters))


async def count_visible(session: AsyncSession, principal: Principal, filters: ProductFilters | None) -> int:
    """How many live products the principal may read match the filters (an export's size)."""
    statement = _count_statement(principal.is_admin, filter_clauses(filters))
    return int((await session.execute(statement, viewer(principal))).scalar_one())


def _total(admin: bool, clauses: Sequence[ColumnElement[bool]]) -> ColumnElement[int]:
    """The number of visible rows, as a scalar subquery. A user's own rows and the rows
    shared with them are counted apart: an OR of the two defeats the indexes, while the
    owned count is an index-only scan and the shared one is empty for most users."""

    def count(*where: ColumnElement[bool]) -> ColumnElement[int]:
        counted = select(func.count()).select_from(Product).where(access.LIVE, *clauses, *where)
        return counted.correlate(None).scalar_subquery()

    if admin:
        return count()
    return count(access.product_owned(access.VIEWER)) + count(access.product_shared(access.VIEWER))


# Statements without filters are the common case (and the hot one): built once per
# (admin?, order, with total?), with the caller, limit and offset bound at execution.
_ROWS_STATEMENTS: dict[tuple[bool, tuple[SortKey, ...], bool], Select[*tuple[Any, ...]]] = {}
_COUNT_STATEMENTS: dict[bool, Select[int]] = {}


def _rows_statement(
    admin: bool, sort: tuple[SortKey, ...], clauses: Sequence[ColumnElement[bool]], *, with_total: bool
) -> Select[*tuple[Any, ...]]:
    key = (admin, sort, with_total)
    if not clauses and (cached := _ROWS_STATEMENTS.get(key)) is not None:
        return cached
    columns = (*COLUMNS, _total(admin, clauses).label("total")) if with_total else COLUMNS
    statement = (
        select(*columns)
        .where(_readable(admin), *clauses)
        .order_by(*SORTING.order_by(sort))
        .limit(bindparam("limit"))
        .offset(bindparam("offset"))
    )
    if not clauses:
        _ROWS_STATEMENTS[key] = statement
    return statement


def _count_statement(admin: bool, clauses: Sequence[ColumnElement[bool]]) -> Select[int]:
    if not clauses and (cached := _COUNT_STATEMENTS.get(admin)) is not None:
        return cached
    statement = select(_total(admin, clauses))
    if not clauses:
        _COUNT_STATEMENTS[admin] = statement
    return statement


def _total_key(principal: Principal, filters: ProductFilters | None) -> Hashable:
    scope = "*" if principal.is_admin else principal.user_id
    given = () if filters is None else tuple(sorted(filters.model_dump(exclude_none=True).items()))
    return ("products", scope, given)


async def list_page(
    session: AsyncSession,
    principal: Principal,
    filters: ProductFilters | None,
    params: ListParams,
    totals: TotalCache,
) -> Page[ProductRow]:
    """Page mode. The total comes from ``totals`` when this caller counted the same
    filters moments ago; otherwise it rides along with the page as a column (an
    uncorrelated scalar subquery, evaluated once), and only a page past the end needs a
    query of its own for it."""
    clauses = filter_clauses(filters)
    page = params.page
    connection = await session.connection()
    values = {**viewer(principal), "limit": page.limit, "offset": page.offset}
    key = _total_key(principal, filters)
    total = totals.get(key)
    statement = _rows_statement(principal.is_admin, params.sort, clauses, with_total=total is None)
    rows = list((await connection.execute(statement, values)).all())
    if total is None:
        if rows:
            total = int(rows[0].total)
        else:
            counted = await connection.execute(
                _count_statement(principal.is_admin, clauses), viewer(principal)
            )
            total = int(counted.scalar_one())
        totals.put(key, total)
    return Page(rows, total, page)


async def list_after(
    session: AsyncSession, principal: Principal, filters: ProductFilters | None, params: ListParams
) -> tuple[list[ProductRow], str | None]:
    """Cursor mode: one page after the cursor, and the next page's cursor if there is one."""
    clauses = filter_clauses(filters)
    after = SORTING.after_cursor(params.cursor, params.sort)
    if after is not None:
        clauses.append(after)
    statement = _rows_statement(principal.is_admin, params.sort, clauses, with_total=False)
    bound = {**viewer(principal), "limit": params.per_page + 1, "offset": 0}
    rows = list((await (await session.connection()).execute(statement, bound)).all())
    return SORTING.cut(rows, params.sort, params.per_page)


_GET_STATEMENTS: dict[tuple[bool, bool], Select[*tuple[Any, ...]]] = {}


def _get_statement(admin: bool, for_update: bool) -> Select[*tuple[Any, ...]]:
    statement = _GET_STATEMENTS.get((admin, for_update))
    if statement is None:
        statement = select(*COLUMNS).where(
            Product.id == bindparam("product_id", type_=Uuid()), _readable(admin)
        )
        if for_update:
            # PostgreSQL: a row lock, so a concurrent writer waits and then sees the new
            # version. SQLite: the request already holds the database's write lock.
            statement = statement.with_for_update(of=Product)
        _GET_STATEMENTS[(admin, for_update)] = statement
    return statement


async def get_readable(
    session: AsyncSession, principal: Principal, product_id: uuid.UUID, *, for_update: bool = False
) -> ProductRow | None:
    statement = _get_statement(principal.is_admin, for_update)
    result = await session.execute(statement, {**viewer(principal), "product_id": product_id})
    return result.one_or_none()


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
