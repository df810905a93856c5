"""Queries for products, in SQLAlchemy Core over typed rows (the list is the hottest
read in the service; the ORM's identity map and instrumentation buy nothing here).

Every read goes through the visibility rules of :mod:`keel.sharing.access`, so a product the
caller may not see is simply not found.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Hashable, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    BindParameter,
    Boolean,
    ColumnElement,
    Row,
    Select,
    String,
    Uuid,
    bindparam,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from keel.platform.cache import TotalCache
from keel.platform.db.engine import Database
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
# Where a page's rows carry the total, when they do.
_TOTAL = len(COLUMNS)

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


def _has_tag(tag: ColumnElement[str]) -> ColumnElement[bool]:
    return _HasTag(Product.tags, tag)


# Filters become bound parameters, so a statement depends only on which filters are given
# (its shape) and is built and compiled once per shape, not per request.
Shape = frozenset[str]
_IN_STOCK, _OUT_OF_STOCK = "in_stock", "out_of_stock"


def _param(name: str, column: InstrumentedAttribute[Any]) -> BindParameter[Any]:
    return bindparam(f"filter_{name}", type_=column.type)


def filtering(filters: ProductFilters | None) -> tuple[Shape, dict[str, Any]]:
    """Which filters are given, and the values their parameters are bound to."""
    if filters is None:
        return frozenset(), {}
    given = filters.model_dump(exclude_none=True)
    values: dict[str, Any] = {}
    for name, given_value in given.items():
        if name == "in_stock":
            continue
        value = given_value
        if name == "q":
            value = substring_pattern(given_value)
        elif name in ("min_price", "max_price"):
            value = cents(given_value)
        values[f"filter_{name}"] = value
    shape = set(given) - {"in_stock"}
    if filters.in_stock is not None:
        shape.add(_IN_STOCK if filters.in_stock else _OUT_OF_STOCK)
    if not filters.q:  # an empty q matches everything
        shape.discard("q")
        values.pop("filter_q", None)
    return frozenset(shape), values


def _filter_clauses(shape: Shape) -> list[ColumnElement[bool]]:
    clauses: list[ColumnElement[bool]] = []
    if "q" in shape:
        pattern = bindparam("filter_q", type_=String())
        # ILIKE on PostgreSQL (served by the trigram indexes), lower() LIKE on SQLite.
        clauses.append(
            Product.name.ilike(pattern, escape=LIKE_ESCAPE)
            | Product.description.ilike(pattern, escape=LIKE_ESCAPE)
        )
    if "category" in shape:
        clauses.append(Product.category == _param("category", Product.category))
    if "min_price" in shape:
        clauses.append(Product.price_cents >= _param("min_price", Product.price_cents))
    if "max_price" in shape:
        clauses.append(Product.price_cents <= _param("max_price", Product.price_cents))
    if "folder_id" in shape:
        clauses.append(Product.folder_id == _param("folder_id", Product.folder_id))
    if "tag" in shape:
        clauses.append(_has_tag(bindparam("filter_tag", type_=String())))
    if _IN_STOCK in shape:
        clauses.append(Product.stock > 0)
    if _OUT_OF_STOCK in shape:
        clauses.append(Product.stock == 0)
    if "created_after" in shape:
        clauses.append(Product.created_at >= _param("created_after", Product.created_at))
    if "created_before" in shape:
        clauses.append(Product.created_at < _param("created_before", Product.created_at))
    return clauses


def viewer(principal: Principal) -> dict[str, Any]:
    """The execution parameters of statements built on :data:`access.VIEWER`."""
    return {access.VIEWER_KEY: principal.user_id}


def _readable(admin: bool) -> ColumnElement[bool]:
    return access.LIVE if admin else access.LIVE & access.readable_by(access.VIEWER)


def visible(
    principal: Principal, filters: ProductFilters | None = None
) -> tuple[Select[*tuple[Any, ...]], dict[str, Any]]:
    """Live products the principal may read, filtered (the base of exports), and the
    parameters to execute it with."""
    shape, values = filtering(filters)
    statement = select(*COLUMNS).where(_readable(principal.is_admin), *_filter_clauses(shape))
    return statement, {**viewer(principal), **values}


async def count_visible(session: AsyncSession, principal: Principal, filters: ProductFilters | None) -> int:
    """How many live products the principal may read match the filters (an export's size)."""
    shape, values = filtering(filters)
    statement = _count_statement(principal.is_admin, shape)
    return int((await session.execute(statement, {**viewer(principal), **values})).scalar_one())


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


# Built once per (admin?, order, filters given, after a cursor?, with total?), with the
# caller, the filters, the cursor, limit and offset bound at execution. Bounded: the
# orders and filter combinations a client can ask for are many, the common ones few.
@lru_cache(maxsize=256)
def _rows_statement(
    admin: bool, sort: tuple[SortKey, ...], shape: Shape, *, after: bool, with_total: bool
) -> Select[*tuple[Any, ...]]:
    clauses = _filter_clauses(shape)
    columns = (*COLUMNS, _total(admin, clauses).label("total")) if with_total else COLUMNS
    statement = select(*columns).where(_readable(admin), *clauses)
    if after:
        statement = statement.where(SORTING.after_bound(sort))
    return statement.order_by(*SORTING.order_by(sort)).limit(bindparam("limit")).offset(bindparam("offset"))


@lru_cache(maxsize=64)
def _count_statement(admin: bool, shape: Shape) -> Select[int]:
    return select(_total(admin, _filter_clauses(shape)))


def _total_key(principal: Principal, shape: Shape, filter_values: dict[str, Any]) -> Hashable:
    """Whose total, under which filters: from what :func:`filtering` made of them."""
    scope = "*" if principal.is_admin else principal.user_id
    return ("products", scope, shape, tuple(sorted(filter_values.items())))


async def list_page(
    db: Database,
    principal: Principal,
    filters: ProductFilters | None,
    params: ListParams,
    totals: TotalCache,
) -> Page[Sequence[Any]]:
    """Page mode. The total comes from ``totals`` when this caller counted the same
    filters moments ago, or from the count another of their requests is making now;
    otherwise it rides along with the page as a column (an uncorrelated scalar subquery,
    evaluated once), and only a page past the end needs a query of its own for it."""
    shape, values = filtering(filters)
    key = _total_key(principal, shape, values)
    values.update(viewer(principal))
    page = params.page
    total = totals.get(key)
    counted_elsewhere = totals.lead(key) if total is None else None
    counts = total is None and counted_elsewhere is None
    counted: int | None = None
    try:
        statement = _rows_statement(principal.is_admin, params.sort, shape, after=False, with_total=counts)
        rows = list(await db.fetch(statement, {**values, "limit": page.limit, "offset": page.offset}))
        if counts:
            counted = int(rows[0][_TOTAL]) if rows else await _count(db, principal, shape, values)
    finally:
        if counts:
            totals.finish(key, counted)
    if total is None:
        if counted_elsewhere is not None:
            counted = await asyncio.shield(counted_elsewhere)
        # The other request's count failed: this one counts for itself.
        total = counted if counted is not None else await _count(db, principal, shape, values)
    return Page(rows, total, page)


async def _count(db: Database, principal: Principal, shape: Shape, values: dict[str, Any]) -> int:
    return int((await db.fetch(_count_statement(principal.is_admin, shape), values))[0][0])


async def list_after(
    db: Database, principal: Principal, filters: ProductFilters | None, params: ListParams
) -> tuple[list[Sequence[Any]], str | None]:
    """Cursor mode: one page after the cursor, and the next page's cursor if there is one."""
    shape, values = filtering(filters)
    after = SORTING.cursor_bindings(params.cursor, params.sort) if params.cursor else None
    statement = _rows_statement(
        principal.is_admin, params.sort, shape, after=after is not None, with_total=False
    )
    bound = {**values, **(after or {}), **viewer(principal), "limit": params.per_page + 1, "offset": 0}
    rows = list(await db.fetch(statement, bound))
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
