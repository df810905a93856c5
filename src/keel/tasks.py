"""Every domain's job handlers, imported so a worker knows them all (as ``keel.models``
does for the schema), and the periodic tasks, declared here in one place."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

import keel.models  # noqa: F401 - every table, so a worker's statements resolve foreign keys
from keel.alerts import tasks as alerts_tasks
from keel.audit import tasks as audit_tasks
from keel.auth import tasks as auth_tasks
from keel.documents import tasks as documents_tasks
from keel.event_types import EventType
from keel.jobs import service as jobs_service
from keel.jobs import tasks as jobs_tasks
from keel.metrics import tasks as metrics_tasks
from keel.platform import events
from keel.platform.http import idempotency
from keel.platform.queue import Job, Status, maintenance
from keel.platform.queue.registry import registry
from keel.products import tasks as products_tasks  # noqa: F401 - registers products.export
from keel.realtime import tasks as realtime_tasks  # noqa: F401 - registers the realtime consumer
from keel.webhooks import tasks as webhooks_tasks

registry.every(timedelta(minutes=10), idempotency.PURGE_TASK)
registry.every(timedelta(hours=1), auth_tasks.PURGE_TASK)
registry.every(timedelta(hours=1), maintenance.PURGE_TASK)
registry.every(timedelta(hours=1), events.PURGE_TASK)
registry.every(timedelta(days=1), audit_tasks.RETENTION_TASK)
registry.every(timedelta(hours=1), jobs_tasks.PURGE_FILES_TASK)
registry.every(timedelta(hours=1), webhooks_tasks.PURGE_TASK)
registry.every(timedelta(hours=1), documents_tasks.SWEEP_UPLOADS_TASK)
registry.every(timedelta(minutes=10), metrics_tasks.ROLL_UP_TASK)
registry.every(alerts_tasks.EVERY, alerts_tasks.EVALUATE_TASK)
# Webhook deliveries keep their HTTP connections open between jobs.
registry.on_worker_stopped(webhooks_tasks.close_clients)


@registry.on_finished
async def announce_job_end(session: AsyncSession, job: Job) -> None:
    """A user's job ended for good: ``job.succeeded`` or ``job.failed`` to its owner's
    webhooks (and to the ``webhook_url`` it was submitted with)."""
    event_type = EventType.JOB_SUCCEEDED if job.status == Status.SUCCEEDED else EventType.JOB_FAILED
    await events.emit(
        session,
        event_type,
        jobs_service.render_job(job),
        subject_type="job",
        subject_id=job.id,
        actor_id=job.owner_id,
    )


__all__ = ["announce_job_end", "registry"]
