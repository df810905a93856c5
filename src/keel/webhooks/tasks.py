"""Webhook background work: events become deliveries (an outbox consumer), and each
delivery is POSTed, signed, retried on its schedule and recorded attempt by attempt."""

from __future__ import annotations

import asyncio
import time
import uuid
import weakref
from datetime import timedelta
from typing import Any

import structlog
from cryptography.exceptions import InvalidTag

from keel.platform.db.base import utcnow
from keel.platform.events import Event, body, consumer
from keel.platform.outbound import signing, ssrf
from keel.platform.outbound.client import OutboundClient, OutboundError
from keel.platform.queue import JobContext, JobFailed, Retry, task
from keel.platform.resources import Resources
from keel.settings import Settings
from keel.webhooks import delivery, dispatch, repository, service
from keel.webhooks.models import DeliveryStatus
from keel.webhooks.repository import Rows

log = structlog.get_logger("keel.webhooks")

GONE_REASON = "The receiver answered 410 Gone, so the webhook was disabled."
PURGE_TASK = "webhooks.purge_deliveries"
# How long a finished delivery stays listed (and redeliverable).
DELIVERY_RETENTION = timedelta(days=30)
PURGE_BATCH = 5000

# One client per event loop and SSRF policy, kept for the process's life: its pools keep
# connections to receivers alive between deliveries (no new TLS handshake for each), and
# the CA bundle is loaded once instead of per job. Per loop because pooled connections
# belong to the loop that opened them.
_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[bool, bool], OutboundClient]] = (
    weakref.WeakKeyDictionary()
)


def outbound_client(settings: Settings) -> OutboundClient:
    per_loop = _clients.setdefault(asyncio.get_running_loop(), {})
    key = (settings.webhooks_allow_private_targets, settings.allows_http_webhooks)
    client = per_loop.get(key)
    if client is None:
        client = per_loop[key] = OutboundClient(allow_private=key[0], allow_http=key[1])
    return client


async def close_clients() -> None:
    """Close this loop's clients (at worker shutdown)."""
    for client in _clients.pop(asyncio.get_running_loop(), {}).values():
        await client.aclose()


@consumer("webhooks")
async def dispatch_event(ctx: JobContext, event: Event) -> None:
    async with ctx.transaction() as session:
        created = await dispatch.dispatch(session, event)
    if created:
        log.info("webhooks.dispatched", event_id=str(event.id), type=event.type, deliveries=created)


def _secrets(resources: Resources, target: Rows) -> list[str]:
    """The current secret, and the previous one while its overlap lasts."""
    box = resources.security.secret_box
    secrets = [service.open_secret(box, target.webhook_id, target.secret)]
    expires = target.previous_secret_expires_at
    if target.previous_secret is not None and expires is not None and expires > utcnow():
        secrets.append(service.open_secret(box, target.webhook_id, target.previous_secret))
    return secrets


@task(
    service.DELIVER_TASK,
    max_attempts=delivery.max_attempts(None),
    # The receiver's timeout (at most 30 s), a name lookup (at most 5 s) and the bookkeeping.
    timeout=60.0,
    # Only for failures of our own (the database); a receiver's failure sets its own delay.
    backoff_base=5.0,
    backoff_max=3600.0,
)
async def deliver(ctx: JobContext) -> dict[str, Any]:
    delivery_id = uuid.UUID(ctx.payload["delivery_id"])
    series = int(ctx.payload.get("series", 1))
    resources = ctx.resources
    async with resources.db.reader() as session:
        target = await repository.delivery_target(session, delivery_id)
    if target is None or target.series != series or target.status != DeliveryStatus.PENDING.value:
        # Deleted with its webhook, redelivered as a new series, or cancelled.
        return {"outcome": "skipped"}
    if not target.is_active:
        async with ctx.transaction() as session:
            await service.cancel_delivery(session, target.id, series, "Cancelled: the webhook is disabled.")
        return {"outcome": "cancelled"}

    outcome = await _attempt(resources, target)
    status_code = outcome["status_code"]
    gone = status_code == 410
    retryable = outcome.pop("retryable")
    retry_after = outcome.pop("retry_after")
    if status_code is not None and 200 <= status_code < 300:
        status = DeliveryStatus.SUCCEEDED
    elif gone or not retryable or ctx.is_last_attempt:
        status = DeliveryStatus.FAILED
    else:
        status = DeliveryStatus.PENDING
    delay = 0.0
    if status is DeliveryStatus.PENDING:
        if retry_after is not None:
            delay = retry_after
        else:
            delay = delivery.jittered(delivery.backoff(target.retry_policy, ctx.attempt))
        outcome["next_attempt_at"] = utcnow() + timedelta(seconds=delay)
    async with ctx.transaction() as session:
        disabled = await service.record_attempt(
            session,
            resources.settings,
            target=target,
            attempt=outcome,
            status=status,
            disable_reason=GONE_REASON if gone else None,
        )
    fields = {"delivery_id": str(target.id), "webhook_id": str(target.webhook_id), "status_code": status_code}
    if status is DeliveryStatus.SUCCEEDED:
        log.info("webhooks.delivery.succeeded", **fields, attempt=ctx.attempt)
        return {"outcome": "succeeded", "status_code": status_code}
    log.info(
        "webhooks.delivery.failed",
        **fields,
        error=outcome["error"],
        final=status is not DeliveryStatus.PENDING,
    )
    if status is DeliveryStatus.FAILED or disabled:
        raise JobFailed(outcome["error"] or "The delivery failed.")
    raise Retry(outcome["error"] or "The delivery failed.", after=delay)


async def _attempt(resources: Resources, target: Rows) -> dict[str, Any]:
    """POST the delivery once: the attempt as it is recorded, plus whether a retry may
    help (``retryable``) and when the receiver asked to be called again (``retry_after``)."""
    attempt: dict[str, Any] = {
        "started_at": utcnow(),
        "duration_ms": None,
        "status_code": None,
        "error": None,
        "response_body": None,
        "next_attempt_at": None,
        "retryable": True,
        "retry_after": None,
    }
    try:
        secrets = _secrets(resources, target)
    except InvalidTag:
        # KEEL_SECRET_KEY changed since the secret was sealed: nothing can sign now.
        attempt.update(
            error="The signing secret cannot be read; rotate the webhook's secret.", retryable=False
        )
        return attempt
    content = body(target.event_type, target.occurred_at, target.payload)
    # Standard Webhooks: `webhook-id` is the event's (the receiver's idempotency key, the
    # same on every attempt); the timestamp is the time of this attempt.
    headers = signing.webhook_headers(
        secrets, msg_id=str(target.event_id), timestamp=int(time.time()), body=content
    )
    started = time.perf_counter()
    try:
        response = await outbound_client(resources.settings).post(
            target.url,
            body=content,
            headers=headers,
            timeout=float(target.timeout_seconds),
            verify_tls=target.ssl_verify,
            max_response_bytes=delivery.MAX_RESPONSE_BYTES,
        )
    except ssrf.TargetRefused as exc:
        # The URL was fine when saved; its name now resolves somewhere forbidden.
        attempt.update(error=f"Target refused: {exc.reason}", retryable=False)
    except OutboundError as exc:
        attempt.update(error=exc.message)
    else:
        code = response.status_code
        attempt.update(
            status_code=code, response_body=delivery.excerpt(response.body), duration_ms=response.duration_ms
        )
        if 300 <= code < 400:
            attempt["error"] = f"The receiver answered HTTP {code}; redirects are not followed."
        elif not 200 <= code < 300:
            attempt["error"] = f"The receiver answered HTTP {code}."
        if code in delivery.RETRY_AFTER_STATUSES:
            attempt["retry_after"] = delivery.retry_after(response.headers.get("retry-after"), utcnow())
        return attempt
    attempt["duration_ms"] = (time.perf_counter() - started) * 1000
    return attempt


@task(PURGE_TASK, max_attempts=3, timeout=300.0)
async def purge_deliveries(ctx: JobContext) -> dict[str, int]:
    """Forget finished deliveries after ``DELIVERY_RETENTION``, in batches (short
    transactions: SQLite has one writer)."""
    cutoff = utcnow() - DELIVERY_RETENTION
    removed = 0
    while True:
        async with ctx.transaction() as session:
            batch = await repository.purge_finished(session, cutoff, limit=PURGE_BATCH)
        removed += batch
        if batch < PURGE_BATCH:
            return {"removed": removed}
