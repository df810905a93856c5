"""API keys: create (the secret is returned once, only its hash is kept), list, read, revoke."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from keel.api_keys import repository
from keel.api_keys.errors import ApiKeyLimitReached, ApiKeyNotFound
from keel.api_keys.models import ApiKey
from keel.api_keys.schemas import ApiKeyCreate
from keel.audit import service as audit
from keel.audit.service import RequestMeta
from keel.auth.dependencies import API_KEY_PREFIX
from keel.platform.cache import TTLCache
from keel.platform.db import after_commit
from keel.platform.db.base import utcnow
from keel.platform.http.errors import ValidationFailed
from keel.platform.http.pagination import Page, PageParams
from keel.platform.security.principal import Principal
from keel.platform.security.tokens import new_secret, sha256_hex

MAX_LIVE_KEYS = 50
PREFIX_LENGTH = 12


async def create(
    session: AsyncSession, principal: Principal, *, data: ApiKeyCreate, meta: RequestMeta
) -> tuple[ApiKey, str]:
    """Create a key for the caller; returns it with its secret (never stored)."""
    for index, scope in enumerate(data.scopes):
        if not principal.can(scope):
            raise ValidationFailed(
                f"You do not hold {scope!r}, so a key cannot have it.", field=f"scopes.{index}"
            )
    now = utcnow()
    expires_at = await _expiry_within_parent(session, principal, data.expires_at)
    await repository.lock_owner(session, principal.user_id)
    if await repository.count_live(session, principal.user_id, now) >= MAX_LIVE_KEYS:
        raise ApiKeyLimitReached(f"At most {MAX_LIVE_KEYS} live API keys; revoke one first.")
    secret = new_secret(API_KEY_PREFIX)
    key = ApiKey(
        user_id=principal.user_id,
        name=data.name,
        prefix=secret[:PREFIX_LENGTH],
        key_hash=sha256_hex(secret),
        scopes=list(data.scopes),
        expires_at=expires_at,
    )
    session.add(key)
    await session.flush()
    audit.record(
        session,
        meta,
        action="api_key.created",
        actor=principal,
        resource_type="api_key",
        resource_id=key.id,
        detail={
            "name": key.name,
            "scopes": key.scopes,
            "expires_at": expires_at.isoformat() if expires_at else None,
        },
    )
    return key, secret


async def _expiry_within_parent(
    session: AsyncSession, principal: Principal, expires_at: datetime | None
) -> datetime | None:
    """A key created by a key must not outlive it: otherwise a leaked, short-lived key
    could mint itself a permanent successor that survives its own expiry."""
    if principal.api_key_id is None:
        return expires_at
    parent = await repository.get_live_owned(session, principal.user_id, principal.api_key_id)
    limit = parent.expires_at if parent is not None else None
    if limit is not None and (expires_at is None or expires_at > limit):
        raise ValidationFailed(
            f"A key created with an API key must expire no later than that key ({limit.isoformat()}).",
            field="expires_at",
        )
    return expires_at


async def list_keys(
    session: AsyncSession, principal: Principal, *, params: PageParams, include_revoked: bool
) -> Page[ApiKey]:
    return await repository.list_owned(session, principal.user_id, params, include_revoked=include_revoked)


async def get(session: AsyncSession, principal: Principal, *, key_id: uuid.UUID) -> ApiKey:
    """A live key of the caller: a revoked key is gone, as after any DELETE."""
    key = await repository.get_live_owned(session, principal.user_id, key_id)
    if key is None:
        raise ApiKeyNotFound()
    return key


async def revoke(
    session: AsyncSession,
    principal: Principal,
    *,
    key_id: uuid.UUID,
    principals: TTLCache[str, Principal | None],
    meta: RequestMeta,
) -> None:
    """Revoke a live key of the caller; it stops working in this process once committed
    (other processes drop it within their cache period)."""
    key_hash = await repository.revoke_owned(session, principal.user_id, key_id, utcnow())
    if key_hash is None:
        raise ApiKeyNotFound()
    after_commit(session, lambda: principals.evict(key_hash))
    audit.record(
        session,
        meta,
        action="api_key.revoked",
        actor=principal,
        resource_type="api_key",
        resource_id=key_id,
    )
