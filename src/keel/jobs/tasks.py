"""Telling a job's ``webhook_url`` how the job ended.

The worker emits ``job.succeeded`` / ``job.failed`` in the transaction that records the
end of a user's job; the outbox hands the event to :func:`job_webhooks`, which enqueues
one ``jobs.notify`` delivery when the job was submitted with a ``webhook_url``. The
delivery is signed per Standard Webhooks with the owner's secret (``GET
/jobs/webhook-secret``); its ``webhook-id`` is the event id, the same on every attempt,
so a receiver can drop duplicates (delivery is at least once).
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC
from typing import Any

import httpx
import orjson
import structlog

from keel.event_types import EventType
from keel.jobs import files, repository
from keel.jobs.service import WEBHOOK_URL_KEY, webhook_secret
from keel.platform.events import Event, consumer
from keel.platform.outbound import signing
from keel.platform.outbound.client import OutboundClient, OutboundError
from keel.platform.outbound.ssrf import TargetRefused
from keel.platform.queue import JobContext, JobFailed, Retry, enqueue, task

log = structlog.get_logger("keel.jobs")

NOTIFY_TASK = "jobs.notify"
PURGE_FILES_TASK = "jobs.files.purge"
NOTIFY_ATTEMPTS = 6
# Per attempt; the task's own timeout leaves room for the connection set-up around it.
NOTIFY_TIMEOUT_SECONDS = 10.0
# Between attempts: 30 s, 1 min, 2 min, 4 min, 8 min (about a quarter of an hour in all).
RETRY_BASE_SECONDS = 30.0
RETRY_MAX_SECONDS = 900.0
_ENDED = frozenset({EventType.JOB_SUCCEEDED.value, EventType.JOB_FAILED.value})


@consumer("job-webhooks")
async def job_webhooks(ctx: JobContext, event: Event) -> None:
    """Queue the delivery of a job's end to its ``webhook_url``, if it has one."""
    if event.type not in _ENDED or event.subject_type != "job" or event.subject_id is None:
        return
    # Read first: most jobs have no webhook_url, and a write transaction would take
    # SQLite's write lock for nothing.
    async with ctx.resources.db.reader() as session:
        found = await repository.get_payload(session, event.subject_id)
    if found is None:  # deleted by retention before the event was dispatched
        return
    owner_id, payload = found
    url = payload.get(WEBHOOK_URL_KEY)
    if not isinstance(url, str) or owner_id is None:
        return
    message = {
        "type": event.type,
        "timestamp": event.occurred_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "data": event.payload,
    }
    async with ctx.transaction() as session:
        # The dedupe key makes a re-dispatched event (consumers see an event at least once)
        # join the delivery already queued instead of adding a second one.
        await enqueue(
            session,
            NOTIFY_TASK,
            {"url": url, "owner_id": str(owner_id), "message_id": str(event.id), "message": message},
            dedupe_key=f"{NOTIFY_TASK}:{event.id}",
        )


def _retry_after(attempt: int, response_headers: httpx.Headers | None = None) -> float:
    delay = min(RETRY_MAX_SECONDS, RETRY_BASE_SECONDS * 2.0 ** max(0, attempt - 1))
    if response_headers is not None:
        # A receiver that asks for a pause (429/503 Retry-After, in seconds) gets at least it.
        value = response_headers.get("retry-after", "")
        if value.isdigit():
            delay = max(delay, min(RETRY_MAX_SECONDS, float(value)))
    return delay


@task(NOTIFY_TASK, max_attempts=NOTIFY_ATTEMPTS, timeout=NOTIFY_TIMEOUT_SECONDS + 20)
async def notify(ctx: JobContext) -> dict[str, Any]:
    """POST the signed message; retry on a non-2xx answer, a timeout or a lost connection."""
    settings = ctx.resources.settings
    url: str = ctx.payload["url"]
    message_id: str = ctx.payload["message_id"]
    body = orjson.dumps(ctx.payload["message"])
    secret = webhook_secret(settings, uuid.UUID(ctx.payload["owner_id"]))
    headers = signing.webhook_headers([secret], msg_id=message_id, timestamp=int(time.time()), body=body)
    client = OutboundClient(
        allow_private=settings.webhooks_allow_private_targets, allow_http=settings.allows_http_webhooks
    )
    try:
        response = await client.post(url, body=body, headers=headers, timeout=NOTIFY_TIMEOUT_SECONDS)
    except TargetRefused as exc:
        # Checked when the job was submitted; the host now resolves somewhere forbidden.
        raise JobFailed(f"The webhook URL was refused: {exc.reason}") from None
    except OutboundError as exc:
        log.info("jobs.notify.failed", message_id=message_id, kind=exc.kind, attempt=ctx.attempt)
        raise Retry(exc.message, after=_retry_after(ctx.attempt)) from None
    finally:
        await client.aclose()
    if not 200 <= response.status_code < 300:
        log.info(
            "jobs.notify.rejected", message_id=message_id, status=response.status_code, attempt=ctx.attempt
        )
        raise Retry(
            f"The receiver answered HTTP {response.status_code}.",
            after=_retry_after(ctx.attempt, response.headers),
        )
    return {"status_code": response.status_code, "duration_ms": round(response.duration_ms, 1)}


@task(PURGE_FILES_TASK, max_attempts=1, timeout=600.0)
async def purge_files(ctx: JobContext) -> dict[str, int]:
    """Delete job files as old as the jobs the queue's retention deletes: no job links to
    them any more."""
    cutoff = time.time() - ctx.resources.settings.job_retention_days * 86400
    return {"deleted": await files.purge_older_than(cutoff)}
