"""Folders: create, read, list, rename, move (cycle- and depth-checked), delete."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from keel.audit import service as audit
from keel.audit.service import RequestMeta
from keel.event_types import EventType
from keel.folders import repository
from keel.folders.errors import FolderCycle, FolderNotEmpty, FolderNotFound, FolderTooDeep
from keel.folders.models import MAX_DEPTH
from keel.folders.repository import FolderRow
from keel.folders.schemas import FolderCreate, FolderFilters, FolderUpdate
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
from keel.products import service as products
from keel.products.schemas import ProductFilters
from keel.sharing import access
from keel.sharing.models import Level
from keel.sharing.service import check_level, require_folder_level


def render(row: FolderRow) -> dict[str, Any]:
    return dict(row._mapping)


async def _announce(
    session: AsyncSession, principal: Principal, event_type: EventType, row: FolderRow
) -> None:
    await emit(
        session, event_type, render(row), subject_type="folder", subject_id=row.id, actor_id=principal.user_id
    )


def etag(row: FolderRow) -> str:
    return strong_etag(row.id, row.version)


async def _parent_depth(session: AsyncSession, principal: Principal, parent_id: uuid.UUID | None) -> int:
    """The depth of a parent the caller may file into (0 for the top level)."""
    if parent_id is None:
        return 0
    await require_folder_level(session, principal, parent_id, Level.EDITOR, field="parent_id")
    depth = await repository.get_depth(session, parent_id)
    if depth is None:
        raise FolderNotFound(field="parent_id")
    return depth


async def create(session: AsyncSession, principal: Principal, *, data: FolderCreate) -> FolderRow:
    if data.parent_id is not None:
        await repository.lock_tree(session)  # the parent's depth must not change under us
    depth = await _parent_depth(session, principal, data.parent_id) + 1
    if depth > MAX_DEPTH:
        raise FolderTooDeep(field="parent_id")
    now = utcnow()
    row = await repository.insert_folder(
        session,
        {
            "name": data.name,
            "description": data.description,
            "parent_id": data.parent_id,
            "owner_id": principal.user_id,
            "depth": depth,
            "created_at": now,
            "updated_at": now,
        },
    )
    await _announce(session, principal, EventType.FOLDER_CREATED, row)
    return row


async def get(session: AsyncSession, principal: Principal, *, folder_id: uuid.UUID) -> FolderRow:
    row = await repository.get_readable(session, principal, folder_id)
    if row is None:
        raise FolderNotFound()
    return row


async def view(session: AsyncSession, principal: Principal, folder_id: uuid.UUID) -> View | None:
    """What ``GET /folders/{id}`` shows the principal, or None if they may not see it."""
    row = await repository.get_readable(session, principal, folder_id)
    return None if row is None else View(etag(row), render(row), in_folder_tree=True)


async def list_folders(
    session: AsyncSession, principal: Principal, *, filters: FolderFilters, params: ListParams
) -> Page[dict[str, Any]] | CursorPage:
    statement = repository.visible(principal, filters)
    if params.cursor is None:
        return (await repository.list_page(session, statement, params)).map(render)
    rows, next_cursor = await repository.list_after(session, statement, params)
    return CursorPage([render(row) for row in rows], next_cursor, params.page)


async def list_products(
    session: AsyncSession,
    db: Database,
    principal: Principal,
    *,
    folder_id: uuid.UUID,
    filters: ProductFilters,
    params: ListParams,
    totals: TotalCache,
) -> Page[dict[str, Any]] | CursorPage:
    """The products directly in a folder the caller may read."""
    await get(session, principal, folder_id=folder_id)
    scoped = filters.model_copy(update={"folder_id": folder_id})
    return await products.list_products(db, principal, filters=scoped, params=params, totals=totals)


async def _writable(
    session: AsyncSession,
    principal: Principal,
    folder_id: uuid.UUID,
    if_match: list[str] | None,
    needed: Level,
) -> tuple[FolderRow, Level]:
    """The folder, locked, and the caller's level: visible (404), allowed (403), unchanged
    since the client read it (412)."""
    row = await repository.get_readable(session, principal, folder_id, for_update=True)
    if row is None:
        raise FolderNotFound()
    level = await access.folder_level(session, principal, row.id)
    check_level("folder", level, needed)
    require_match(if_match, etag(row))
    return row, level


async def update(
    session: AsyncSession,
    principal: Principal,
    *,
    folder_id: uuid.UUID,
    data: FolderCreate | FolderUpdate,
    if_match: list[str] | None,
) -> FolderRow:
    """``PUT`` (every field) or ``PATCH`` (the fields sent); a new parent moves the subtree."""
    fields = set(FolderCreate.model_fields) if isinstance(data, FolderCreate) else data.model_fields_set
    if "parent_id" in fields:
        # Before any row lock: every tree change takes the tree lock first, so two of
        # them never wait on each other's rows (no deadlock).
        await repository.lock_tree(session)
    row, level = await _writable(session, principal, folder_id, if_match, Level.EDITOR)
    values = {name: getattr(data, name) for name in fields}
    if "parent_id" in fields and data.parent_id != row.parent_id:
        # Moving changes who can see the subtree (the new ancestors' grants): an owner's call.
        check_level("folder", level, Level.OWNER, field="parent_id")
        values["depth"] = await _move(session, principal, row, data.parent_id)
    updated = await repository.update_folder(session, row.id, row.version, values, utcnow())
    if updated is None:
        raise PreconditionFailed()
    # A move changes who may see the whole subtree (its new ancestors' grants).
    invalidate_on_commit(session, FOLDER_TREE_TAG if "depth" in values else resource_tag("folder", row.id))
    await _announce(session, principal, EventType.FOLDER_UPDATED, updated)
    return updated


async def _move(
    session: AsyncSession, principal: Principal, row: FolderRow, parent_id: uuid.UUID | None
) -> int:
    """Move the folder's subtree under ``parent_id``; the folder's new depth."""
    if parent_id is not None and await repository.is_in_subtree(session, row.id, parent_id):
        raise FolderCycle(field="parent_id")
    new_depth = await _parent_depth(session, principal, parent_id) + 1
    if new_depth + await repository.subtree_height(session, row.id) > MAX_DEPTH:
        raise FolderTooDeep(field="parent_id")
    await repository.move(session, row.id, parent_id, new_depth - row.depth)
    return new_depth


async def delete(
    session: AsyncSession,
    principal: Principal,
    *,
    folder_id: uuid.UUID,
    recursive: bool,
    if_match: list[str] | None,
    meta: RequestMeta,
) -> None:
    """Delete an empty folder, or with ``recursive`` the folder, its sub-folders and (soft)
    every product in them. Products already soft-deleted are taken out of the folder."""
    await repository.lock_tree(session)
    row, _level = await _writable(session, principal, folder_id, if_match, Level.OWNER)
    subtree = repository.subtree_ids(row.id)
    if not recursive and (
        await repository.has_children(session, row.id) or await products.any_live_in_folders(session, subtree)
    ):
        raise FolderNotEmpty()
    removed = await products.delete_in_folders(session, subtree) if recursive else 0
    await repository.delete_subtree(session, row.id)
    invalidate_on_commit(session, FOLDER_TREE_TAG)
    # One event for the folder: its sub-folders and products went with it.
    await _announce(session, principal, EventType.FOLDER_DELETED, row)
    audit.record(
        session,
        meta,
        action="folder.deleted",
        actor=principal,
        resource_type="folder",
        resource_id=row.id,
        detail={"recursive": recursive, "products_deleted": removed},
    )
