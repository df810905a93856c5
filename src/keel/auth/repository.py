"""Queries for sessions, refresh tokens and login throttles.

Refresh-token rotation is one conditional UPDATE: of N concurrent presentations of a
token exactly one matches ``used_at IS NULL``. The throttle is one upsert, so concurrent
failures cannot lose a count.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import and_, case, func, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from keel.auth.models import AuthSession, LoginThrottle, RecoveryCode, RefreshToken
from keel.platform.db.base import UTCDateTime
from keel.users.models import User


async def identity_of_session(
    session: AsyncSession, session_id: uuid.UUID, now: datetime
) -> tuple[uuid.UUID, str, str] | None:
    """(user id, role, plan) when the session is live and its user active."""
    result = await session.execute(
        select(User.id, User.role, User.plan)
        .join(AuthSession, AuthSession.user_id == User.id)
        .where(
            AuthSession.id == session_id,
            AuthSession.revoked_at.is_(None),
            AuthSession.expires_at > now,
            User.is_active.is_(True),
        )
    )
    row = result.one_or_none()
    return None if row is None else (row[0], row[1], row[2])


async def use_refresh_token(session: AsyncSession, token_hash: str, now: datetime) -> uuid.UUID | None:
    """Mark a live, unused token used; return its session id, or None if none matched."""
    result = await session.execute(
        update(RefreshToken)
        .where(
            RefreshToken.token_hash == token_hash,
            RefreshToken.used_at.is_(None),
            RefreshToken.expires_at > now,
        )
        .values(used_at=now)
        .returning(RefreshToken.session_id)
    )
    return result.scalar_one_or_none()


async def refresh_token_session(session: AsyncSession, token_hash: str) -> tuple[uuid.UUID, bool] | None:
    """(session id, already used) for a known token."""
    result = await session.execute(
        select(RefreshToken.session_id, RefreshToken.used_at.is_not(None)).where(
            RefreshToken.token_hash == token_hash
        )
    )
    row = result.one_or_none()
    return None if row is None else (row[0], bool(row[1]))


async def revoke_sessions(
    session: AsyncSession,
    *,
    reason: str,
    now: datetime,
    session_id: uuid.UUID | None = None,
    user_id: uuid.UUID | None = None,
    keep: uuid.UUID | None = None,
) -> list[uuid.UUID]:
    """Revoke one session, or all live sessions of a user (but ``keep``); return their ids."""
    conditions: list[ColumnElement[bool]] = [AuthSession.revoked_at.is_(None)]
    if session_id is not None:
        conditions.append(AuthSession.id == session_id)
    if user_id is not None:
        conditions.append(AuthSession.user_id == user_id)
    if keep is not None:
        conditions.append(AuthSession.id != keep)
    result = await session.execute(
        update(AuthSession)
        .where(and_(*conditions))
        .values(revoked_at=now, revoked_reason=reason)
        .returning(AuthSession.id)
    )
    return list(result.scalars())


async def session_user(session: AsyncSession, session_id: uuid.UUID) -> uuid.UUID | None:
    return (
        await session.execute(select(AuthSession.user_id).where(AuthSession.id == session_id))
    ).scalar_one_or_none()


async def throttle_locked_until(session: AsyncSession, key: str, now: datetime) -> datetime | None:
    result = await session.execute(
        select(LoginThrottle.locked_until).where(LoginThrottle.key == key, LoginThrottle.locked_until > now)
    )
    return result.scalar_one_or_none()


async def record_failure(
    session: AsyncSession, key: str, now: datetime, *, threshold: int, window: timedelta
) -> datetime | None:
    """Count one failed login; return when the lock ends if this failure locked it."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    window_over = LoginThrottle.window_started_at <= now - window
    statement = dialect.insert(LoginThrottle).values(key=key, failures=1, window_started_at=now)
    statement = statement.on_conflict_do_update(
        index_elements=[LoginThrottle.key],
        set_={
            "failures": case((window_over, 1), else_=LoginThrottle.failures + 1),
            # Typed, so SQLite stores it in the column's format (compared as text there).
            "window_started_at": case(
                (window_over, literal(now, UTCDateTime())), else_=LoginThrottle.window_started_at
            ),
        },
    ).returning(LoginThrottle.failures, LoginThrottle.window_started_at)
    failures, window_started_at = (await session.execute(statement)).one()
    if failures < threshold:
        return None
    locked_until: datetime = window_started_at + window
    await session.execute(
        update(LoginThrottle).where(LoginThrottle.key == key).values(locked_until=locked_until)
    )
    return locked_until


async def clear_throttle(session: AsyncSession, key: str) -> None:
    await session.execute(
        update(LoginThrottle).where(LoginThrottle.key == key).values(failures=0, locked_until=None)
    )


async def use_recovery_code(session: AsyncSession, user_id: uuid.UUID, code_hash: str, now: datetime) -> bool:
    result = await session.execute(
        update(RecoveryCode)
        .where(
            RecoveryCode.user_id == user_id,
            RecoveryCode.code_hash == code_hash,
            RecoveryCode.used_at.is_(None),
        )
        .values(used_at=now)
        .returning(RecoveryCode.id)
    )
    return result.first() is not None


async def count_live_sessions(session: AsyncSession, user_id: uuid.UUID, now: datetime) -> int:
    result = await session.execute(
        select(func.count())
        .select_from(AuthSession)
        .where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None), AuthSession.expires_at > now)
    )
    return int(result.scalar_one())
