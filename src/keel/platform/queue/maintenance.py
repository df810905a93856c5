"""The queue's own periodic cleanup: finished jobs past their retention."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import delete

from keel.platform.db.base import utcnow
from keel.platform.queue.context import JobContext
from keel.platform.queue.models import FINISHED, Job
from keel.platform.queue.registry import task

PURGE_TASK = "queue.purge_finished"


@task(PURGE_TASK, max_attempts=3, timeout=600.0)
async def purge_finished(ctx: JobContext) -> dict[str, Any]:
    cutoff = utcnow() - timedelta(days=ctx.resources.settings.job_retention_days)
    async with ctx.transaction() as session:
        result = await session.execute(
            delete(Job).where(Job.status.in_([s.value for s in FINISHED]), Job.finished_at < cutoff)
        )
    return {"deleted": result.rowcount}  # type: ignore[attr-defined]
