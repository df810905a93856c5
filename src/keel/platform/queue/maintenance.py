"""The queue's own tasks: cleanup of finished jobs past their retention, and a probe."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy import delete

from keel.platform.db.base import utcnow
from keel.platform.queue.context import JobContext
from keel.platform.queue.models import FINISHED, Job
from keel.platform.queue.registry import task

log = structlog.get_logger("keel.queue")

PURGE_TASK = "queue.purge_finished"
PROBE_TASK = "queue.probe"
MAX_PROBE_SLEEP = 60.0


@task(PURGE_TASK, max_attempts=3, timeout=600.0)
async def purge_finished(ctx: JobContext) -> dict[str, Any]:
    cutoff = utcnow() - timedelta(days=ctx.resources.settings.job_retention_days)
    async with ctx.transaction() as session:
        result = await session.execute(
            delete(Job).where(Job.status.in_([s.value for s in FINISHED]), Job.finished_at < cutoff)
        )
    return {"deleted": result.rowcount}  # type: ignore[attr-defined]


@task(PROBE_TASK, max_attempts=3, timeout=MAX_PROBE_SLEEP + 10)
async def probe(ctx: JobContext) -> dict[str, Any]:
    """Does nothing for ``payload.sleep`` seconds (default 0) and logs when it ran where:
    the unit of work for `make bench`'s queue figures and for checks that no job runs
    twice at once."""
    sleep = min(MAX_PROBE_SLEEP, max(0.0, float(ctx.payload.get("sleep", 0))))
    started = time.time()
    if sleep:
        await asyncio.sleep(sleep)
    log.info(
        "queue.probe.ran",
        job_id=str(ctx.job_id),
        worker=ctx.worker,
        attempt=ctx.attempt,
        started=started,
        ended=time.time(),
    )
    return {"slept": sleep, "worker": ctx.worker}
