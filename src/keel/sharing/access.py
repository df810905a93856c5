"""Who may see and change what, as SQL: visibility is a ``WHERE`` clause, never a filter
over rows already loaded.

A user's level on a folder is the highest of: owning it or any folder above it, and
any grant on it or on a folder above it. On a product: owning it, a grant on it, and
the level on its folder. Admins hold ``OWNER`` everywhere.
"""

from __future__ import annotations

import uuid

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Select,
    Uuid,
    bindparam,
    func,
    literal,
    select,
    true,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession

from keel.folders.models import Folder, FolderPath
from keel.platform.security.principal import Principal
from keel.products.models import Product
from keel.sharing.models import FolderGrant, Level, ProductGrant

# The caller's id as a bound parameter: statements built with it are built once and
# reused for every caller (building and cache-keying a select of this size costs more
# than running it), with the value passed at execution as ``{VIEWER_KEY: user_id}``.
VIEWER_KEY = "viewer_id"
VIEWER = bindparam(VIEWER_KEY, type_=Uuid())
UserRef = uuid.UUID | BindParameter[uuid.UUID]


def _root_folders(user: UserRef) -> Select[uuid.UUID]:
    """Folders the user reaches directly: owned or granted."""
    # correlate(None): used inside queries over ``folders`` too, where SQLAlchemy would
    # otherwise tie this ``folders`` to the outer one.
    owned = select(Folder.id).where(Folder.owner_id == user).correlate(None)
    granted = select(FolderGrant.folder_id).where(FolderGrant.user_id == user)
    return owned.union_all(granted)  # type: ignore[return-value]


def readable_folder_ids(user: UserRef) -> Select[uuid.UUID]:
    """Every folder the user may read: the roots and everything below them."""
    return (
        select(FolderPath.descendant_id)
        .where(FolderPath.ancestor_id.in_(_root_folders(user)))
        .correlate(None)
    )


def folder_readable(principal: Principal) -> ColumnElement[bool]:
    if principal.is_admin:
        return true()
    return Folder.id.in_(readable_folder_ids(principal.user_id))


LIVE = Product.deleted_at.is_(None)


def product_owned(user: UserRef) -> ColumnElement[bool]:
    return Product.owner_id == user


def product_shared(user: UserRef) -> ColumnElement[bool]:
    """Products of other owners the user reaches by a grant on them or on a folder
    above them. Disjoint from :func:`product_owned`, so the two can be counted apart:
    the owned part is an index-only count, and the shared part is empty for most users."""
    granted = select(ProductGrant.product_id).where(ProductGrant.user_id == user).correlate(None)
    return (Product.owner_id != user) & (
        Product.id.in_(granted) | Product.folder_id.in_(readable_folder_ids(user))
    )


def product_readable(principal: Principal) -> ColumnElement[bool]:
    """Live products the principal may read (soft-deleted ones are never readable)."""
    if principal.is_admin:
        return LIVE
    return LIVE & readable_by(principal.user_id)


def readable_by(user: UserRef) -> ColumnElement[bool]:
    return product_owned(user) | product_shared(user)


async def folder_level(session: AsyncSession, principal: Principal, folder_id: uuid.UUID) -> Level:
    """The principal's level on a folder (``NONE`` when it may not see it, or it does
    not exist)."""
    if principal.is_admin:
        exists = (await session.execute(select(Folder.id).where(Folder.id == folder_id))).first()
        return Level.OWNER if exists else Level.NONE
    ancestors = select(FolderPath.ancestor_id).where(FolderPath.descendant_id == folder_id)
    owned = select(literal(int(Level.OWNER)).label("level")).where(
        Folder.id.in_(ancestors), Folder.owner_id == principal.user_id
    )
    granted = select(FolderGrant.level.label("level")).where(
        FolderGrant.folder_id.in_(ancestors), FolderGrant.user_id == principal.user_id
    )
    levels = union_all(owned, granted).subquery()
    best = (await session.execute(select(func.max(levels.c.level)))).scalar_one_or_none()
    return Level(best or 0)


async def product_level(
    session: AsyncSession,
    principal: Principal,
    *,
    product_id: uuid.UUID,
    owner_id: uuid.UUID,
    folder_id: uuid.UUID | None,
) -> Level:
    """The principal's level on an existing product, from its owner and folder."""
    if principal.is_admin or owner_id == principal.user_id:
        return Level.OWNER
    granted = (
        await session.execute(
            select(ProductGrant.level).where(
                ProductGrant.product_id == product_id, ProductGrant.user_id == principal.user_id
            )
        )
    ).scalar_one_or_none()
    level = Level(granted or 0)
    if folder_id is not None and level < Level.OWNER:
        level = max(level, await folder_level(session, principal, folder_id))
    return level


async def product_level_by_id(
    session: AsyncSession, principal: Principal, product_id: uuid.UUID, *, include_deleted: bool = False
) -> Level:
    """The principal's level on a live product (``NONE`` when it may not see it). With
    ``include_deleted``, on a soft-deleted one too: the level it had, which decides who
    hears of the deletion."""
    readable = true() if include_deleted else product_readable(principal)
    row = (
        await session.execute(
            select(Product.owner_id, Product.folder_id).where(Product.id == product_id, readable)
        )
    ).one_or_none()
    if row is None:
        return Level.NONE
    return await product_level(
        session, principal, product_id=product_id, owner_id=row.owner_id, folder_id=row.folder_id
    )
