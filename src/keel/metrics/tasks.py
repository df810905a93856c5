"""The hourly roll-up of request statistics, and their retention."""

from __future__ import annotations

from keel.platform.db.base import utcnow
from keel.platform.queue import JobContext, task

ROLL_UP_TASK = "metrics.roll_up"


@task(ROLL_UP_TASK, max_attempts=3, timeout=300.0)
async def roll_up(ctx: JobContext) -> dict[str, int]:
    """Merge the last two complete hours' minutes (from the database or Redis) into hour
    rows (run every few minutes, so an hour is rolled up soon after it ends and again once
    late writes are in: the same rows again), and drop minutes past 25 hours and hours
    past 8 days (Redis expires its minutes itself)."""
    async with ctx.transaction() as session:
        return {"hours": await ctx.resources.stats.roll_up(session, utcnow())}
