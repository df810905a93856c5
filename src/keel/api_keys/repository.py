"""Queries for API keys. Every owner-facing query is scoped to the owner, so another
user's key is simply not found."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from keel.api_keys.models import ApiKey
from keel.platform.http.pagination import Page, PageParams, paginate
from keel.users.models import User


async def identity_of_key(
    session: AsyncSession, key_hash: str, now: datetime
) -> tuple[uuid.UUID, uuid.UUID, str, str, list[str]] | None:
    """(key id, owner id, owner role, owner plan, scopes) for a usable key of an active owner."""
    result = await session.execute(
        select(ApiKey.id, User.id, User.role, User.plan, ApiKey.scopes)
        .join(User, User.id == ApiKey.user_id)
        .where(
            ApiKey.key_hash == key_hash,
            ApiKey.revoked_at.is_(None),
            (ApiKey.expires_at.is_(None)) | (ApiKey.expires_at > now),
            User.is_active.is_(True),
        )
    )
    row = result.one_or_none()
    return None if row is None else (row[0], row[1], row[2], row[3], list(row[4] or []))


async def touch(session: AsyncSession, key_id: uuid.UUID, now: datetime) -> None:
    await session.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=now))


async def lock_owner(session: AsyncSession, user_id: uuid.UUID) -> None:
    """Serialise key creation per owner, so concurrent requests cannot pass the limit
    together (PostgreSQL row lock; SQLite's write transaction is already exclusive)."""
    await session.execute(select(User.id).where(User.id == user_id).with_for_update())


async def count_live(session: AsyncSession, user_id: uuid.UUID, now: datetime) -> int:
    result = await session.execute(
        select(func.count())
        .select_from(ApiKey)
        .where(
            ApiKey.user_id == user_id,
            ApiKey.revoked_at.is_(None),
            (ApiKey.expires_at.is_(None)) | (ApiKey.expires_at > now),
        )
    )
    return result.scalar_one()


async def list_owned(
    session: AsyncSession, user_id: uuid.UUID, params: PageParams, *, include_revoked: bool
) -> Page[ApiKey]:
    """One page of the owner's keys, newest first (ids are UUIDv7: they break ties in
    creation order)."""
    statement = select(ApiKey).where(ApiKey.user_id == user_id)
    if not include_revoked:
        statement = statement.where(ApiKey.revoked_at.is_(None))
    return await paginate(session, statement.order_by(ApiKey.created_at.desc(), ApiKey.id.desc()), params)


async def get_live_owned(session: AsyncSession, user_id: uuid.UUID, key_id: uuid.UUID) -> ApiKey | None:
    """The owner's key unless it is revoked (an expired key is still returned)."""
    result = await session.execute(
        select(ApiKey).where(ApiKey.id == key_id, ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
    )
    return result.scalar_one_or_none()


async def revoke_owned(
    session: AsyncSession, user_id: uuid.UUID, key_id: uuid.UUID, now: datetime
) -> str | None:
    """Revoke a live key of this owner in one conditional UPDATE, so of two concurrent
    revocations exactly one succeeds; the key's hash, or None when nothing matched."""
    result = await session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id, ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=now)
        .returning(ApiKey.key_hash)
    )
    return result.scalar_one_or_none()
