"""Idempotency records: one row per (caller, key), claimed before the handler runs and
completed with the response to replay. The SQL of the facility lives here; the
middleware (``idempotency.py``) decides what to answer."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import (
    JSON,
    CheckConstraint,
    LargeBinary,
    String,
    UniqueConstraint,
    delete,
    or_,
    select,
    update,
)
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.dml import Delete, Update

from keel.platform.db.base import Base, IdMixin, utcnow
from keel.platform.db.engine import Database


class State(StrEnum):
    IN_PROGRESS = "in_progress"
    # The handler's transaction committed; its response is not stored yet (or never
    # will be: the process died, or the response was not storable).
    COMMITTED = "committed"
    COMPLETED = "completed"


# How long a claim excludes retries. A request still running past it is presumed dead:
# a retry takes the record over, and the original's commit is refused (mark_committed).
LEASE = timedelta(seconds=60)
# Where the middleware leaves the claimed record's id for request_session (scope["state"]).
RECORD_ID_STATE = "idempotency_record_id"
# Concurrent claims that keep losing the race get IDEMPOTENCY_IN_PROGRESS instead.
_CLAIM_ATTEMPTS = 3


class IdempotencyRecord(IdMixin, Base):
    __tablename__ = "idempotency_records"
    __table_args__ = (
        UniqueConstraint("principal", "key"),
        CheckConstraint(f"state IN ({', '.join(repr(state.value) for state in State)})", name="state"),
    )

    # The caller's stable id (a user id): keys are scoped per caller.
    principal: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(255))
    # SHA-256 of method, path, query string and body.
    fingerprint: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default=State.IN_PROGRESS.value)
    locked_until: Mapped[datetime]
    response_status: Mapped[int | None] = mapped_column(default=None)
    # [[name, value], ...] in order, latin-1 as on the wire.
    response_headers: Mapped[list[list[str]] | None] = mapped_column(JSON, default=None)
    # Encrypted with the app's SecretBox when the response said ``Cache-Control: no-store``.
    response_body: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    body_encrypted: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)


async def _affected(session: AsyncSession, statement: Delete | Update) -> int:
    result = cast(CursorResult[Any], await session.execute(statement))
    return result.rowcount


def _replaceable(record: IdempotencyRecord, fingerprint: str, now: datetime) -> bool:
    """An expired record counts as absent; an in-progress one past its lease belongs to
    a request that died before committing, so the same request may take it over."""
    if record.expires_at <= now:
        return True
    return (
        record.state == State.IN_PROGRESS and record.locked_until <= now and record.fingerprint == fingerprint
    )


async def claim(
    db: Database, *, principal: str, key: str, fingerprint: str, ttl: timedelta
) -> uuid.UUID | IdempotencyRecord | None:
    """A new in-progress record's id; or the live record that holds (principal, key);
    or None when concurrent claims kept winning the race (the caller retries later).

    Each attempt is its own short committed transaction: the handler must not run
    inside it, and the unique (principal, key) constraint is what makes two concurrent
    duplicates unable to both insert.
    """
    for _ in range(_CLAIM_ATTEMPTS):
        now = utcnow()
        async with db.writer() as session:
            existing = (
                await session.execute(
                    select(IdempotencyRecord).where(
                        IdempotencyRecord.principal == principal, IdempotencyRecord.key == key
                    )
                )
            ).scalar_one_or_none()
            if existing is not None:
                if not _replaceable(existing, fingerprint, now):
                    return existing
                if not await _delete_if_replaceable(session, existing.id, now):
                    continue  # another retry replaced it first
            record = IdempotencyRecord(
                principal=principal,
                key=key,
                fingerprint=fingerprint,
                state=State.IN_PROGRESS.value,
                locked_until=now + LEASE,
                created_at=now,
                expires_at=now + ttl,
            )
            session.add(record)
            try:
                await session.commit()
            except IntegrityError:
                continue  # a concurrent duplicate inserted first
            return record.id
    return None


async def _delete_if_replaceable(session: AsyncSession, record_id: uuid.UUID, now: datetime) -> bool:
    # Conditional, so that of two retries taking over the same stale record only one
    # succeeds (PostgreSQL re-checks the condition after waiting for the row lock).
    result = await _affected(
        session,
        delete(IdempotencyRecord).where(
            IdempotencyRecord.id == record_id,
            or_(
                IdempotencyRecord.expires_at <= now,
                (IdempotencyRecord.state == State.IN_PROGRESS) & (IdempotencyRecord.locked_until <= now),
            ),
        ),
    )
    return bool(result)


async def mark_committed(session: AsyncSession, record_id: uuid.UUID) -> bool:
    """In the handler's own transaction, just before it commits: once this is durable the
    request is never run again. False when a retry took the record over (the lease ran
    out), in which case the handler's transaction must be rolled back."""
    result = await _affected(
        session,
        update(IdempotencyRecord)
        .where(IdempotencyRecord.id == record_id, IdempotencyRecord.state == State.IN_PROGRESS)
        # A fresh lease: retries wait for the response that is about to be stored rather
        # than conclude it was lost.
        .values(state=State.COMMITTED.value, locked_until=utcnow() + LEASE),
    )
    return bool(result)


async def complete(
    db: Database,
    record_id: uuid.UUID,
    *,
    status: int,
    headers: list[list[str]],
    body: bytes,
    encrypted: bool,
) -> None:
    async with db.writer() as session:
        await session.execute(
            update(IdempotencyRecord)
            .where(
                IdempotencyRecord.id == record_id,
                IdempotencyRecord.state.in_((State.IN_PROGRESS, State.COMMITTED)),
            )
            .values(
                state=State.COMPLETED.value,
                response_status=status,
                response_headers=headers,
                response_body=body,
                body_encrypted=encrypted,
            )
        )
        await session.commit()


async def release(db: Database, record_id: uuid.UUID) -> None:
    """Forget a claim whose response is not replayed, so a retry runs again; unless the
    handler committed, since running it again would repeat its changes."""
    async with db.writer() as session:
        await session.execute(
            delete(IdempotencyRecord).where(
                IdempotencyRecord.id == record_id, IdempotencyRecord.state == State.IN_PROGRESS
            )
        )
        await session.commit()


async def purge_expired(session: AsyncSession, now: datetime) -> int:
    """Delete records past their expiry; the caller commits."""
    return await _affected(session, delete(IdempotencyRecord).where(IdempotencyRecord.expires_at <= now))
