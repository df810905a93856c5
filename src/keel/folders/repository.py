"""Queries for folders and their closure table (``folder_paths``)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Select, delete, func, insert, literal, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from keel.folders.models import Folder, FolderPath
from keel.folders.schemas import FolderFilters
from keel.platform.db.search import LIKE_ESCAPE, substring_pattern
from keel.platform.http.listing import ListParams, SortField, Sorting
from keel.platform.http.pagination import Page
from keel.platform.security.principal import Principal
from keel.sharing.access import folder_readable

COLUMNS = (
    Folder.id,
    Folder.name,
    Folder.description,
    Folder.parent_id,
    Folder.owner_id,
    Folder.depth,
    Folder.version,
    Folder.created_at,
    Folder.updated_at,
)
SORTING = Sorting(
    {
        "name": SortField(Folder.name, "str"),
        "created_at": SortField(Folder.created_at, "datetime"),
        "updated_at": SortField(Folder.updated_at, "datetime"),
    },
    default="name",
    tiebreak=Folder.id,
)
FolderRow = Row[*tuple[Any, ...]]


def visible(principal: Principal, filters: FolderFilters) -> Select[*tuple[Any, ...]]:
    statement = select(*COLUMNS).where(folder_readable(principal))
    if filters.parent_id is not None:
        statement = statement.where(Folder.parent_id == filters.parent_id)
    if filters.top_level is not None:
        statement = statement.where(
            Folder.parent_id.is_(None) if filters.top_level else Folder.parent_id.is_not(None)
        )
    if filters.q:
        statement = statement.where(Folder.name.ilike(substring_pattern(filters.q), escape=LIKE_ESCAPE))
    return statement


async def list_page(
    session: AsyncSession, statement: Select[*tuple[Any, ...]], params: ListParams
) -> Page[FolderRow]:
    total = (
        await session.execute(select(func.count()).select_from(statement.order_by(None).subquery()))
    ).scalar_one()
    page = params.page
    if page.offset >= total:
        return Page([], total, page)
    ordered = statement.order_by(*SORTING.order_by(params.sort)).limit(page.limit).offset(page.offset)
    return Page(list((await session.execute(ordered)).all()), total, page)


async def list_after(
    session: AsyncSession, statement: Select[*tuple[Any, ...]], params: ListParams
) -> tuple[list[FolderRow], str | None]:
    after = SORTING.after_cursor(params.cursor, params.sort)
    if after is not None:
        statement = statement.where(after)
    ordered = statement.order_by(*SORTING.order_by(params.sort)).limit(params.per_page + 1)
    return SORTING.cut(list((await session.execute(ordered)).all()), params.sort, params.per_page)


async def get_readable(
    session: AsyncSession, principal: Principal, folder_id: uuid.UUID, *, for_update: bool = False
) -> FolderRow | None:
    statement = select(*COLUMNS).where(Folder.id == folder_id, folder_readable(principal))
    if for_update:
        statement = statement.with_for_update(of=Folder)
    return (await session.execute(statement)).one_or_none()


# Arbitrary constant: moves and nested creations take this PostgreSQL advisory lock, so a
# cycle or depth check cannot be overtaken by another move committing meanwhile (two
# folders moved into each other at once would both pass the check). SQLite's write
# transaction is exclusive already.
TREE_LOCK_KEY = 0x6B65656C_0001


async def lock_tree(session: AsyncSession) -> None:
    """Serialise changes to the folder tree's shape until this transaction ends."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": TREE_LOCK_KEY})


async def get_depth(session: AsyncSession, folder_id: uuid.UUID) -> int | None:
    return (await session.execute(select(Folder.depth).where(Folder.id == folder_id))).scalar_one_or_none()


async def insert_folder(session: AsyncSession, values: dict[str, Any]) -> FolderRow:
    row = (await session.execute(insert(Folder).values(**values).returning(*COLUMNS))).one()
    # The closure: the new folder is its own descendant, and one more level below
    # every ancestor of its parent.
    await session.execute(insert(FolderPath).values(ancestor_id=row.id, descendant_id=row.id, distance=0))
    if row.parent_id is not None:
        await session.execute(
            insert(FolderPath).from_select(
                ["ancestor_id", "descendant_id", "distance"],
                select(
                    FolderPath.ancestor_id, literal(row.id, Folder.id.type), FolderPath.distance + 1
                ).where(FolderPath.descendant_id == row.parent_id),
            )
        )
    return row


def subtree_ids(folder_id: uuid.UUID) -> Select[uuid.UUID]:
    """The folder and everything below it."""
    return select(FolderPath.descendant_id).where(FolderPath.ancestor_id == folder_id)


async def is_in_subtree(session: AsyncSession, folder_id: uuid.UUID, candidate: uuid.UUID) -> bool:
    statement = select(FolderPath.distance).where(
        FolderPath.ancestor_id == folder_id, FolderPath.descendant_id == candidate
    )
    return (await session.execute(statement)).first() is not None


async def subtree_height(session: AsyncSession, folder_id: uuid.UUID) -> int:
    """Levels below the folder (0 for a folder without sub-folders)."""
    statement = select(func.max(FolderPath.distance)).where(FolderPath.ancestor_id == folder_id)
    return int((await session.execute(statement)).scalar_one() or 0)


async def has_children(session: AsyncSession, folder_id: uuid.UUID) -> bool:
    statement = select(Folder.id).where(Folder.parent_id == folder_id).limit(1)
    return (await session.execute(statement)).first() is not None


async def move(
    session: AsyncSession, folder_id: uuid.UUID, new_parent: uuid.UUID | None, depth_change: int
) -> None:
    """Re-hang a subtree: drop its paths from its old ancestors, add paths from the new
    ones, and shift the depth of every folder in it."""
    subtree = subtree_ids(folder_id).scalar_subquery()
    old_ancestors = select(FolderPath.ancestor_id).where(
        FolderPath.descendant_id == folder_id, FolderPath.ancestor_id != folder_id
    )
    await session.execute(
        delete(FolderPath).where(
            FolderPath.descendant_id.in_(subtree), FolderPath.ancestor_id.in_(old_ancestors.scalar_subquery())
        )
    )
    if new_parent is not None:
        above = select(FolderPath.ancestor_id, FolderPath.distance).where(
            FolderPath.descendant_id == new_parent
        )
        below = select(FolderPath.descendant_id, FolderPath.distance).where(
            FolderPath.ancestor_id == folder_id
        )
        above_q, below_q = above.subquery(), below.subquery()
        await session.execute(
            insert(FolderPath).from_select(
                ["ancestor_id", "descendant_id", "distance"],
                select(
                    above_q.c.ancestor_id,
                    below_q.c.descendant_id,
                    above_q.c.distance + below_q.c.distance + 1,
                ).select_from(above_q.join(below_q, literal(True))),
            )
        )
    if depth_change:
        await session.execute(
            update(Folder).where(Folder.id.in_(subtree)).values(depth=Folder.depth + depth_change)
        )


async def update_folder(
    session: AsyncSession, folder_id: uuid.UUID, version: int, values: dict[str, Any], now: datetime
) -> FolderRow | None:
    result = await session.execute(
        update(Folder)
        .where(Folder.id == folder_id, Folder.version == version)
        .values(**values, version=Folder.version + 1, updated_at=now)
        .returning(*COLUMNS)
    )
    return result.one_or_none()


async def delete_subtree(session: AsyncSession, folder_id: uuid.UUID) -> None:
    """Delete the folder and everything below it (paths and grants cascade)."""
    ids = [row[0] for row in (await session.execute(subtree_ids(folder_id))).all()]
    await session.execute(delete(Folder).where(Folder.id.in_(ids)))
