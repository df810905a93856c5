"""Alert evaluation, every 30 seconds, by one worker at a time.

``keel.tasks`` registers :data:`EVALUATE_TASK` with ``registry.every(30 s)``. The
queue's scheduler (:mod:`keel.platform.queue.scheduler`) claims each period of a
periodic task with one compare-and-set ``UPDATE job_schedules … WHERE last_period <
period``: whatever the number of workers, exactly one enqueues the job for a period,
and one worker claims that job. So the rules are evaluated once per 30 s across the
deployment, without a leader election of our own. Should two evaluations ever overlap
(a job re-run after its lease expired), the open alerts and timers are read ``FOR
UPDATE`` and the unique index on open fingerprints refuses a duplicate alert.
"""

from __future__ import annotations

from datetime import timedelta

from keel.alerts import evaluation
from keel.platform.db.base import utcnow
from keel.platform.queue import JobContext, task

EVALUATE_TASK = "alerts.evaluate"
EVERY = timedelta(seconds=30)


@task(EVALUATE_TASK, max_attempts=1, timeout=25.0)
async def evaluate(ctx: JobContext) -> dict[str, int]:
    """Evaluate every rule at the current time, in one transaction. One attempt: the
    next period evaluates again anyway."""
    async with ctx.transaction() as session:
        outcome = await evaluation.evaluate(session, utcnow(), stats=ctx.resources.stats)
    return {action.value: len(series) for action, series in outcome.actions.items()}
