"""Products: create, read, list, replace, change, soft-delete, restore, export."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession

from keel.audit import service as audit
from keel.audit.service import RequestMeta
from keel.event_types import EventType
from keel.platform.cache import TotalCache
from keel.platform.caching import FOLDER_TREE_TAG, invalidate_on_commit, resource_tag
from keel.platform.caching.views import View
from keel.platform.db.base import utcnow
from keel.platform.db.engine import Database
from keel.platform.events import emit
from keel.platform.http.etag import PreconditionFailed, require_match, strong_etag
from keel.platform.http.listing import CursorPage, ListParams
from keel.platform.http.pagination import Page
from keel.platform.security.principal import Principal
from keel.products import repository
from keel.products.errors import ProductNotFound
from keel.products.repository import ProductRow
from keel.products.schemas import ProductCreate, ProductFilters, ProductUpdate, cents, format_cents
from keel.sharing import access
from keel.sharing.models import Level
from keel.sharing.service import check_level, require_folder_level


def render(row: Sequence[Any]) -> dict[str, Any]:
    """The API representation (see ``schemas.Product``), ready for JSON."""
    # One unpacking in COLUMNS order: a list renders this per row, and attribute access
    # on a Row costs several times more than a tuple unpack.
    (
        product_id,
        owner_id,
        folder_id,
        name,
        description,
        price_cents,
        currency,
        stock,
        category,
        tags,
        version,
        created_at,
        updated_at,
    ) = row[:13]
    # str() the ids: asyncpg returns its own UUID subclass, which pydantic-core
    # serialises on a slow generic path.
    return {
        "id": str(product_id),
        "name": name,
        "description": description,
        "price": format_cents(price_cents),
        "currency": currency,
        "stock": stock,
        "category": category,
        "tags": tags,
        "folder_id": None if folder_id is None else str(folder_id),
        "owner_id": str(owner_id),
        "version": version,
        "created_at": created_at,
        "updated_at": updated_at,
    }


async def _announce(
    session: AsyncSession, principal: Principal | None, event_type: EventType, row: ProductRow
) -> None:
    await emit(
        session,
        event_type,
        render(row),
        subject_type="product",
        subject_id=row.id,
        actor_id=principal.user_id if principal else None,
    )


def etag(row: ProductRow) -> str:
    return strong_etag(row.id, row.version)


def _columns(data: ProductCreate | ProductUpdate, fields: set[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in fields:
        value = getattr(data, name)
        if name == "price":
            values["price_cents"] = cents(value)
        else:
            values[name] = value
    return values


async def create(session: AsyncSession, principal: Principal, *, data: ProductCreate) -> ProductRow:
    if data.folder_id is not None:
        await require_folder_level(session, principal, data.folder_id, Level.EDITOR, field="folder_id")
    now = utcnow()
    values = _columns(data, set(ProductCreate.model_fields))
    row = await repository.insert_product(
        session, {**values, "owner_id": principal.user_id, "created_at": now, "updated_at": now}
    )
    await _announce(session, principal, EventType.PRODUCT_CREATED, row)
    return row


async def get(session: AsyncSession, principal: Principal, *, product_id: uuid.UUID) -> ProductRow:
    row = await repository.get_readable(session, principal, product_id)
    if row is None:
        raise ProductNotFound()
    return row


async def view(session: AsyncSession, principal: Principal, product_id: uuid.UUID) -> View | None:
    """What ``GET /products/{id}`` shows the principal, or None if they may not see it."""
    row = await repository.get_readable(session, principal, product_id)
    return None if row is None else View(etag(row), render(row), in_folder_tree=row.folder_id is not None)


async def list_products(
    db: Database,
    principal: Principal,
    *,
    filters: ProductFilters,
    params: ListParams,
    totals: TotalCache,
) -> Page[dict[str, Any]] | CursorPage:
    """A page of the products the principal may see. Read outside a session, by the
    cheapest path the database has (:meth:`Database.fetch`): the hottest read there is."""
    if params.cursor is None:
        return (await repository.list_page(db, principal, filters, params, totals)).map(render)
    rows, next_cursor = await repository.list_after(db, principal, filters, params)
    return CursorPage([render(row) for row in rows], next_cursor, params.page)


async def _writable(
    session: AsyncSession,
    principal: Principal,
    product_id: uuid.UUID,
    if_match: list[str] | None,
    needed: Level,
) -> tuple[ProductRow, Level]:
    """The product, locked, and the caller's level, after the checks every write makes in
    this order: visible (404), allowed (403), unchanged since the client read it (412)."""
    row = await repository.get_readable(session, principal, product_id, for_update=True)
    if row is None:
        raise ProductNotFound()
    level = await access.product_level(
        session, principal, product_id=row.id, owner_id=row.owner_id, folder_id=row.folder_id
    )
    check_level("product", level, needed)
    require_match(if_match, etag(row))
    return row, level


async def update(
    session: AsyncSession,
    principal: Principal,
    *,
    product_id: uuid.UUID,
    data: ProductCreate | ProductUpdate,
    if_match: list[str] | None,
) -> ProductRow:
    """``PUT`` (a ``ProductCreate``: every field) or ``PATCH`` (only the fields sent)."""
    row, level = await _writable(session, principal, product_id, if_match, Level.EDITOR)
    fields = set(ProductCreate.model_fields) if isinstance(data, ProductCreate) else data.model_fields_set
    if "folder_id" in fields and data.folder_id != row.folder_id:
        # Moving changes who can see the product (the folders' grants): an owner's call.
        check_level("product", level, Level.OWNER, field="folder_id")
        if data.folder_id is not None:
            await require_folder_level(session, principal, data.folder_id, Level.EDITOR, field="folder_id")
    updated = await repository.update_product(session, row.id, row.version, _columns(data, fields), utcnow())
    if updated is None:  # changed between the read and the write: not possible under the lock
        raise PreconditionFailed()
    invalidate_on_commit(session, resource_tag("product", row.id))
    await _announce(session, principal, EventType.PRODUCT_UPDATED, updated)
    return updated


async def delete(
    session: AsyncSession,
    principal: Principal,
    *,
    product_id: uuid.UUID,
    if_match: list[str] | None,
    meta: RequestMeta,
) -> None:
    row, _level = await _writable(session, principal, product_id, if_match, Level.OWNER)
    if not await repository.soft_delete(session, row.id, row.version, utcnow()):
        raise PreconditionFailed()
    invalidate_on_commit(session, resource_tag("product", row.id))
    await _announce(session, principal, EventType.PRODUCT_DELETED, row)
    audit.record(
        session, meta, action="product.deleted", actor=principal, resource_type="product", resource_id=row.id
    )


async def restore(
    session: AsyncSession, principal: Principal, *, product_id: uuid.UUID, meta: RequestMeta
) -> ProductRow:
    """Bring back a soft-deleted product (admins); 404 when there is no deleted one."""
    row = await repository.restore(session, product_id, utcnow())
    if row is None:
        raise ProductNotFound("No deleted product with this id.")
    invalidate_on_commit(session, resource_tag("product", row.id))
    await _announce(session, principal, EventType.PRODUCT_RESTORED, row)
    audit.record(
        session, meta, action="product.restored", actor=principal, resource_type="product", resource_id=row.id
    )
    return row


async def any_live_in_folders(session: AsyncSession, folder_ids: Select[uuid.UUID]) -> bool:
    return await repository.any_live_in_folders(session, folder_ids)


async def delete_in_folders(session: AsyncSession, folder_ids: Select[uuid.UUID]) -> int:
    """Soft-delete every live product in these folders (a recursive folder delete); how many."""
    # Their cache entries all carry the folder-tree tag.
    invalidate_on_commit(session, FOLDER_TREE_TAG)
    return await repository.soft_delete_in_folders(session, folder_ids, utcnow())
