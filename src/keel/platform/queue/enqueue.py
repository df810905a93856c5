"""Enqueue a job inside the caller's transaction.

Hand-written rather than taken from a library: the job must commit or roll back with
the change that caused it, on SQLite and on PostgreSQL alike. procrastinate and
pgqueuer are PostgreSQL-only; arq, dramatiq, taskiq and celery keep jobs in a broker,
outside the application's transaction.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from keel.platform.db.base import utcnow
from keel.platform.db.dialect import insert_for
from keel.platform.db.ids import new_id
from keel.platform.db.session import after_commit
from keel.platform.queue.models import Job, Status
from keel.platform.queue.registry import Registry, registry

# PostgreSQL channel a worker LISTENs on; NOTIFY is transactional, so a worker wakes
# only once the job is visible.
NOTIFY_CHANNEL = "keel_jobs"
_NOTIFIED = "keel_queue_notified"

# Events of the workers running in this process, set after a commit that enqueued.
local_wakeups: set[asyncio.Event] = set()


def _wake_local() -> None:
    for wakeup in local_wakeups:
        wakeup.set()


async def _announce(session: AsyncSession) -> None:
    """Wake workers once the transaction commits: once per transaction, however many
    jobs it enqueues (a rolled-back one wakes nobody)."""
    transaction = session.sync_session.get_transaction()
    if transaction is None or session.info.get(_NOTIFIED) is transaction:
        return
    session.info[_NOTIFIED] = transaction
    after_commit(session, _wake_local)
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(select(func.pg_notify(NOTIFY_CHANNEL, "")))


def _row(
    kind: str,
    payload: Mapping[str, Any],
    *,
    run_at: datetime | None,
    priority: int,
    dedupe_key: str | None,
    max_attempts: int | None,
    owner_id: uuid.UUID | None,
    tasks: Registry,
) -> dict[str, Any]:
    spec = tasks.get(kind)
    now = utcnow()
    return {
        "id": new_id(),
        "kind": kind,
        "payload": dict(payload),
        "status": Status.QUEUED.value,
        "priority": priority,
        "attempts": 0,
        "max_attempts": max_attempts or spec.max_attempts,
        "run_at": run_at or now,
        "dedupe_key": dedupe_key,
        "owner_id": owner_id,
        "progress": 0,
        "created_at": now,
    }


async def enqueue(
    session: AsyncSession,
    kind: str,
    payload: Mapping[str, Any],
    *,
    run_at: datetime | None = None,
    priority: int = 0,
    dedupe_key: str | None = None,
    max_attempts: int | None = None,
    owner_id: uuid.UUID | None = None,
    tasks: Registry = registry,
) -> uuid.UUID:
    """Add a job to the caller's transaction and return its id.

    With ``dedupe_key``, while a queued or running job holds the key, no new job is
    added and the live job's id is returned. ``payload`` must be JSON-serialisable.
    """
    row = _row(
        kind,
        payload,
        run_at=run_at,
        priority=priority,
        dedupe_key=dedupe_key,
        max_attempts=max_attempts,
        owner_id=owner_id,
        tasks=tasks,
    )
    if dedupe_key is None:
        await session.execute(insert(Job), [row])
        await _announce(session)
        return uuid.UUID(str(row["id"]))
    statement = (
        insert_for(session, Job)
        .values(**row)
        .on_conflict_do_nothing(
            index_elements=["dedupe_key"], index_where=text("status IN ('queued', 'running')")
        )
        .returning(Job.id)
    )
    inserted: uuid.UUID | None = (await session.execute(statement)).scalar_one_or_none()
    if inserted is not None:
        await _announce(session)
        return inserted
    live = select(Job.id).where(Job.dedupe_key == dedupe_key, Job.status.in_(("queued", "running")))
    existing: uuid.UUID = (await session.execute(live)).scalar_one()
    return existing


async def enqueue_many(
    session: AsyncSession,
    kind: str,
    payloads: Iterable[Mapping[str, Any]],
    *,
    owner_id: uuid.UUID | None = None,
    tasks: Registry = registry,
) -> list[uuid.UUID]:
    """Add many jobs of one kind in one statement (executemany)."""
    rows = [
        _row(
            kind,
            payload,
            run_at=None,
            priority=0,
            dedupe_key=None,
            max_attempts=None,
            owner_id=owner_id,
            tasks=tasks,
        )
        for payload in payloads
    ]
    if rows:
        await session.execute(insert(Job), rows)
        await _announce(session)
    return [uuid.UUID(str(row["id"])) for row in rows]
