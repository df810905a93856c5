"""Granting and revoking access, and the level checks other domains call."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from keel.audit import service as audit
from keel.audit.service import RequestMeta
from keel.folders.errors import FolderNotFound, FolderNotOwned, FolderReadOnly
from keel.platform.caching import FOLDER_TREE_TAG, invalidate_on_commit, resource_tag
from keel.platform.db.base import utcnow
from keel.platform.http.errors import Forbidden, NotFound, ValidationFailed
from keel.platform.security.principal import Principal
from keel.products.errors import ProductNotFound, ProductNotOwned, ProductReadOnly
from keel.sharing import access, repository
from keel.sharing.models import FolderGrant, Level, ProductGrant
from keel.sharing.schemas import LEVEL_NAMES, LEVELS, GrantCreate

Kind = Literal["folder", "product"]
_MODELS: dict[Kind, type[FolderGrant] | type[ProductGrant]] = {"folder": FolderGrant, "product": ProductGrant}
_ERRORS: dict[Kind, tuple[type[NotFound], type[Forbidden], type[Forbidden]]] = {
    "folder": (FolderNotFound, FolderReadOnly, FolderNotOwned),
    "product": (ProductNotFound, ProductReadOnly, ProductNotOwned),
}


def check_level(kind: Kind, level: Level, needed: Level, *, field: str | None = None) -> None:
    """404 when the caller cannot see the resource (its existence is not revealed), 403
    when they can but their level is too low."""
    not_found, read_only, not_owned = _ERRORS[kind]
    if level is Level.NONE:
        raise not_found(field=field)
    if level < needed:
        raise (
            not_owned(field=field)
            if needed is Level.OWNER and level >= Level.EDITOR
            else read_only(field=field)
        )


async def require_folder_level(
    session: AsyncSession,
    principal: Principal,
    folder_id: uuid.UUID,
    needed: Level,
    *,
    field: str | None = None,
) -> Level:
    level = await access.folder_level(session, principal, folder_id)
    check_level("folder", level, needed, field=field)
    return level


async def _level(session: AsyncSession, principal: Principal, kind: Kind, resource_id: uuid.UUID) -> Level:
    if kind == "folder":
        return await access.folder_level(session, principal, resource_id)
    return await access.product_level_by_id(session, principal, resource_id)


def _render(row: Any) -> dict[str, Any]:
    return {
        "user_id": row.user_id,
        "email": row.email,
        "full_name": row.full_name,
        "level": LEVEL_NAMES[row.level],
        "granted_by": row.granted_by,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


async def list_grants(
    session: AsyncSession, principal: Principal, *, kind: Kind, resource_id: uuid.UUID
) -> list[dict[str, Any]]:
    """Who else has access: only owners may see it (it names other users)."""
    check_level(kind, await _level(session, principal, kind, resource_id), Level.OWNER)
    return [_render(row) for row in await repository.list_grants(session, _MODELS[kind], resource_id)]


def _forget_views(session: AsyncSession, kind: Kind, resource_id: uuid.UUID) -> None:
    """Cached views must not outlive a revoked grant. A folder grant reaches its whole
    subtree, whose entries all carry the folder-tree tag."""
    invalidate_on_commit(session, FOLDER_TREE_TAG if kind == "folder" else resource_tag(kind, resource_id))


async def grant(
    session: AsyncSession,
    principal: Principal,
    *,
    kind: Kind,
    resource_id: uuid.UUID,
    data: GrantCreate,
    meta: RequestMeta,
) -> tuple[dict[str, Any], bool]:
    """Share with a user, or change their level; (the grant, whether it is new)."""
    check_level(kind, await _level(session, principal, kind, resource_id), Level.OWNER)
    field = "user_id" if data.user_id is not None else "email"
    email = str(data.email).strip().lower() if data.email is not None else None
    user = await repository.active_user(session, user_id=data.user_id, email=email)
    if user is None:
        raise ValidationFailed("No active account matches.", field=field)
    if user.id == principal.user_id:
        raise ValidationFailed("You cannot share with yourself.", field=field)
    model = _MODELS[kind]
    level = LEVELS[data.level]
    now = utcnow()
    existing = await repository.get_grant(session, model, resource_id, user.id)
    created = existing is None
    if existing is None:
        target = {"folder_id": resource_id} if kind == "folder" else {"product_id": resource_id}
        try:
            async with session.begin_nested():
                session.add(model(**target, user_id=user.id, level=int(level), granted_by=principal.user_id))
        except IntegrityError:
            # A concurrent request granted the same user first: change that grant instead.
            existing = await repository.get_grant(session, model, resource_id, user.id)
            created = False
    if existing is not None:
        existing.level = int(level)
        existing.granted_by = principal.user_id
        existing.updated_at = now
    await session.flush()
    _forget_views(session, kind, resource_id)
    audit.record(
        session,
        meta,
        action=f"{kind}.shared",
        actor=principal,
        resource_type=kind,
        resource_id=resource_id,
        detail={"user_id": str(user.id), "level": data.level},
    )
    rows = await repository.list_grants(session, model, resource_id)
    return next(_render(row) for row in rows if row.user_id == user.id), created


async def revoke(
    session: AsyncSession,
    principal: Principal,
    *,
    kind: Kind,
    resource_id: uuid.UUID,
    user_id: uuid.UUID,
    meta: RequestMeta,
) -> None:
    check_level(kind, await _level(session, principal, kind, resource_id), Level.OWNER)
    if not await repository.delete_grant(session, _MODELS[kind], resource_id, user_id):
        raise NotFound("This user has no access granted here.", field="user_id")
    _forget_views(session, kind, resource_id)
    audit.record(
        session,
        meta,
        action=f"{kind}.unshared",
        actor=principal,
        resource_type=kind,
        resource_id=resource_id,
        detail={"user_id": str(user_id)},
    )
