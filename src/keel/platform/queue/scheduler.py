"""Periodic tasks: each period runs once, whatever the number of workers.

Every worker's maintenance tick tries to claim the current period of each periodic
task with one compare-and-set UPDATE on ``job_schedules``; the one whose UPDATE
changes the row enqueues the job in the same transaction.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from keel.platform.db.dialect import insert_for
from keel.platform.queue.enqueue import enqueue
from keel.platform.queue.models import Schedule
from keel.platform.queue.registry import Registry

# How often workers look for due periodic tasks (and reap expired leases).
TICK_SECONDS = 10.0
_EPOCH = datetime(2020, 1, 1, tzinfo=UTC)


def period_start(now: datetime, every: timedelta) -> datetime:
    """The start of the period ``now`` falls in (periods are aligned on a fixed epoch)."""
    return now - (now - _EPOCH) % every


async def enqueue_due(session: AsyncSession, tasks: Registry, now: datetime) -> list[str]:
    """Enqueue every periodic task whose current period has not run yet; their names."""
    if not tasks.periodic:
        return []
    known = set((await session.execute(select(Schedule.name))).scalars())
    missing = [{"name": name, "last_period": None} for name in tasks.periodic if name not in known]
    if missing:
        await session.execute(insert_for(session, Schedule).values(missing).on_conflict_do_nothing())
    started = []
    for name, spec in tasks.periodic.items():
        period = period_start(now, spec.every)
        claim = (
            update(Schedule)
            .where(Schedule.name == name, or_(Schedule.last_period.is_(None), Schedule.last_period < period))
            .values(last_period=period)
            .execution_options(synchronize_session=False)
        )
        if (await session.execute(claim)).rowcount == 1:  # type: ignore[attr-defined]
            await enqueue(session, name, {"period": period.isoformat()}, tasks=tasks)
            started.append(name)
    return started
