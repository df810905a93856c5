"""Operator and owner actions on a job: cancel, retry."""

from __future__ import annotations

import uuid
from typing import Any, cast

from sqlalchemy import update
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession

from keel.platform.db.base import utcnow
from keel.platform.queue.models import ACTIVE, Job, Status


async def cancel(session: AsyncSession, job_id: uuid.UUID) -> bool:
    """Cancel a queued or running job; False when it had already finished.

    A running job's worker notices at its next heartbeat, stops the handler and
    leaves the row as it is here.
    """
    statement = (
        update(Job)
        .where(Job.id == job_id, Job.status.in_([s.value for s in ACTIVE]))
        .values(
            status=Status.CANCELLED.value,
            finished_at=utcnow(),
            lease_owner=None,
            lease_expires_at=None,
        )
    )
    return cast(CursorResult[Any], await session.execute(statement)).rowcount == 1


async def retry(session: AsyncSession, job_id: uuid.UUID) -> bool:
    """Queue a dead or failed job again with a fresh set of attempts; False otherwise.

    Its dedupe key is dropped: a newer live job may hold it by now.
    """
    statement = (
        update(Job)
        .where(Job.id == job_id, Job.status.in_([Status.DEAD.value, Status.FAILED.value]))
        .values(status=Status.QUEUED.value, attempts=0, run_at=utcnow(), finished_at=None, dedupe_key=None)
    )
    return cast(CursorResult[Any], await session.execute(statement)).rowcount == 1
