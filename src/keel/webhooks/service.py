"""Webhooks: subscriptions (create, read, list, replace, change, delete, rotate the
secret), their deliveries (list, read, redeliver, test), and what each delivery attempt
does to its delivery and webhook (retry, fail, disable). Events become deliveries in
``dispatch.py``."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from keel.audit import service as audit
from keel.audit.service import RequestMeta
from keel.event_types import EventType
from keel.platform.db.base import utcnow
from keel.platform.db.ids import new_id
from keel.platform.events import rfc3339
from keel.platform.http.etag import PreconditionFailed, require_match, strong_etag
from keel.platform.http.listing import CursorPage, ListParams
from keel.platform.http.pagination import Page
from keel.platform.outbound import signing
from keel.platform.outbound.policy import require_callable
from keel.platform.queue import enqueue
from keel.platform.resources import Resources
from keel.platform.security.crypto import SecretBox
from keel.platform.security.principal import Principal
from keel.settings import Settings
from keel.webhooks import delivery, repository
from keel.webhooks.errors import (
    DeliveryInProgress,
    DeliveryNotFound,
    TooManyWebhooks,
    WebhookDisabled,
    WebhookNotFound,
)
from keel.webhooks.models import DeliveryStatus
from keel.webhooks.repository import Rows
from keel.webhooks.schemas import DeliveryFilters, WebhookCreate, WebhookUpdate

DELIVER_TASK = "webhooks.deliver"
MAX_WEBHOOKS_PER_USER = 100
PAUSED_BY_OWNER = "Paused by its owner (is_active: false)."
TEST_MESSAGE = "A test delivery from Keel: your endpoint is reachable and can verify signatures."


# --- Rendering ---------------------------------------------------------------------------


def render(row: Rows) -> dict[str, Any]:
    """The API representation (see ``schemas.Webhook``), ready for JSON."""
    data = dict(row._mapping)
    data["id"] = str(row.id)
    data["owner_id"] = str(row.owner_id)
    return data


def etag(row: Rows) -> str:
    return strong_etag(row.id, row.version)


def render_delivery(row: Rows, attempts: Sequence[Rows]) -> dict[str, Any]:
    data = dict(row._mapping)
    del data["series"]
    data.update(
        id=str(row.id),
        webhook_id=str(row.webhook_id),
        event_id=str(row.event_id),
        attempt_count=len(attempts),
    )
    data["attempts"] = [
        {key: value for key, value in attempt._mapping.items() if key != "delivery_id"}
        for attempt in attempts
    ]
    return data


def _context(webhook_id: uuid.UUID) -> bytes:
    # Binds a sealed secret to its webhook: copied onto another row, it does not open.
    return b"webhook-secret:" + webhook_id.bytes


def seal_secret(box: SecretBox, webhook_id: uuid.UUID, secret: str) -> str:
    return box.seal(secret, context=_context(webhook_id))


def open_secret(box: SecretBox, webhook_id: uuid.UUID, sealed: str) -> str:
    return box.open(sealed, context=_context(webhook_id))


async def check_url(settings: Settings, url: str) -> None:
    """422 on ``url`` unless it is a public http(s) target (the SSRF guard)."""
    await require_callable(settings, url, field="url")


def _columns(data: WebhookCreate | WebhookUpdate, fields: set[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in fields:
        value = getattr(data, name)
        values[name] = value.model_dump() if name == "retry_policy" and value is not None else value
    return values


# --- Subscriptions -------------------------------------------------------------------------


async def create(
    session: AsyncSession,
    principal: Principal,
    *,
    data: WebhookCreate,
    resources: Resources,
    meta: RequestMeta,
) -> tuple[Rows, str]:
    """A new webhook you own, and its signing secret (shown this once). ``data.url``
    has passed :func:`check_url` (before the transaction began)."""
    await repository.lock_owner(session, principal.user_id)
    if await repository.count_owned(session, principal.user_id) >= MAX_WEBHOOKS_PER_USER:
        raise TooManyWebhooks(
            f"You have {MAX_WEBHOOKS_PER_USER} webhooks, the most allowed; delete one first."
        )
    webhook_id = new_id()
    secret = signing.generate_secret()
    now = utcnow()
    values = _columns(data, set(WebhookCreate.model_fields))
    if not data.is_active:
        values.update(disabled_at=now, disabled_reason=PAUSED_BY_OWNER)
    row = await repository.insert_webhook(
        session,
        {
            **values,
            "id": webhook_id,
            "owner_id": principal.user_id,
            "secret": seal_secret(resources.security.secret_box, webhook_id, secret),
            "created_at": now,
            "updated_at": now,
        },
    )
    audit.record(
        session,
        meta,
        action="webhook.created",
        actor=principal,
        resource_type="webhook",
        resource_id=webhook_id,
        detail={"url": data.url, "events": data.events},
    )
    return row, secret


async def get(session: AsyncSession, principal: Principal, *, webhook_id: uuid.UUID) -> Rows:
    row = await repository.get_owned(session, principal.user_id, webhook_id)
    if row is None:
        raise WebhookNotFound()
    return row


async def list_webhooks(
    session: AsyncSession, principal: Principal, *, params: ListParams
) -> Page[dict[str, Any]] | CursorPage:
    statement = repository.owned(principal.user_id)
    if params.cursor is None:
        return (await repository.list_page(session, statement, params, repository.SORTING)).map(render)
    rows, next_cursor = await repository.list_after(session, statement, params, repository.SORTING)
    return CursorPage([render(row) for row in rows], next_cursor, params.page)


async def _writable(
    session: AsyncSession, principal: Principal, webhook_id: uuid.UUID, if_match: list[str] | None
) -> Rows:
    """The webhook, locked, after the checks every write makes: yours (404), unchanged
    since the client read it (412)."""
    row = await repository.get_owned(session, principal.user_id, webhook_id, for_update=True)
    if row is None:
        raise WebhookNotFound()
    require_match(if_match, etag(row))
    return row


async def update(
    session: AsyncSession,
    principal: Principal,
    *,
    webhook_id: uuid.UUID,
    data: WebhookCreate | WebhookUpdate,
    if_match: list[str] | None,
    resources: Resources,
    meta: RequestMeta,
) -> Rows:
    """``PUT`` (a ``WebhookCreate``: every field) or ``PATCH`` (only the fields sent).
    Re-enabling clears the failure record; pausing cancels pending deliveries. A new
    ``url`` has passed :func:`check_url` (before the transaction began)."""
    fields = set(WebhookCreate.model_fields) if isinstance(data, WebhookCreate) else data.model_fields_set
    row = await _writable(session, principal, webhook_id, if_match)
    now = utcnow()
    values = _columns(data, fields)
    if "is_active" in fields and data.is_active != row.is_active:
        if data.is_active:
            values.update(disabled_at=None, disabled_reason=None, consecutive_failures=0, failing_since=None)
        else:
            values.update(disabled_at=now, disabled_reason=PAUSED_BY_OWNER)
            await repository.cancel_pending(session, row.id, "The webhook was paused.", now)
    updated = await repository.update_webhook(session, row.id, row.version, values, now)
    if updated is None:  # changed between the read and the write: not possible under the lock
        raise PreconditionFailed()
    audit.record(
        session,
        meta,
        action="webhook.updated",
        actor=principal,
        resource_type="webhook",
        resource_id=row.id,
        detail={"fields": sorted(fields)},
    )
    return updated


async def delete(
    session: AsyncSession,
    principal: Principal,
    *,
    webhook_id: uuid.UUID,
    if_match: list[str] | None,
    meta: RequestMeta,
) -> None:
    """Delete a webhook with its deliveries; its queued delivery jobs find nothing and stop."""
    row = await _writable(session, principal, webhook_id, if_match)
    if not await repository.delete_webhook(session, row.id, row.version):
        raise PreconditionFailed()
    audit.record(
        session,
        meta,
        action="webhook.deleted",
        actor=principal,
        resource_type="webhook",
        resource_id=row.id,
        detail={"url": row.url},
    )


async def rotate_secret(
    session: AsyncSession,
    principal: Principal,
    *,
    webhook_id: uuid.UUID,
    if_match: list[str] | None,
    resources: Resources,
    meta: RequestMeta,
) -> tuple[Rows, str]:
    """A new signing secret; the current one keeps signing alongside it for the overlap."""
    row = await _writable(session, principal, webhook_id, if_match)
    current = await repository.get_secrets(session, row.id)
    overlap = timedelta(hours=resources.settings.webhook_secret_overlap_hours)
    now = utcnow()
    secret = signing.generate_secret()
    values: dict[str, Any] = {
        "secret": seal_secret(resources.security.secret_box, row.id, secret),
        # Sealed for the same webhook, so the sealed form moves over as it is.
        "previous_secret": current.secret if overlap else None,
        "previous_secret_expires_at": now + overlap if overlap else None,
    }
    updated = await repository.update_webhook(session, row.id, row.version, values, now)
    if updated is None:
        raise PreconditionFailed()
    audit.record(
        session,
        meta,
        action="webhook.secret_rotated",
        actor=principal,
        resource_type="webhook",
        resource_id=row.id,
        detail={"overlap_hours": resources.settings.webhook_secret_overlap_hours},
    )
    return updated, secret


# --- Deliveries -----------------------------------------------------------------------------


async def enqueue_delivery(
    session: AsyncSession,
    delivery_id: uuid.UUID,
    *,
    series: int,
    retry_policy: dict[str, Any] | None,
) -> None:
    await enqueue(
        session,
        DELIVER_TASK,
        {"delivery_id": str(delivery_id), "series": series},
        max_attempts=delivery.max_attempts(retry_policy),
    )


async def _with_attempts(session: AsyncSession, rows: Sequence[Rows]) -> list[dict[str, Any]]:
    attempts: dict[uuid.UUID, list[Rows]] = defaultdict(list)
    for attempt in await repository.attempts_of(session, [row.id for row in rows]):
        attempts[attempt.delivery_id].append(attempt)
    return [render_delivery(row, attempts[row.id]) for row in rows]


async def list_deliveries(
    session: AsyncSession,
    principal: Principal,
    *,
    webhook_id: uuid.UUID,
    filters: DeliveryFilters,
    params: ListParams,
) -> Page[dict[str, Any]] | CursorPage:
    """A webhook's deliveries with their attempts (two queries per page, whatever its size)."""
    await get(session, principal, webhook_id=webhook_id)
    statement = repository.deliveries_of(webhook_id, filters)
    sorting = repository.DELIVERY_SORTING
    if params.cursor is None:
        page = await repository.list_page(session, statement, params, sorting)
        return Page(await _with_attempts(session, page.items), page.total, page.params)
    rows, next_cursor = await repository.list_after(session, statement, params, sorting)
    return CursorPage(await _with_attempts(session, rows), next_cursor, params.page)


async def get_delivery(
    session: AsyncSession, principal: Principal, *, webhook_id: uuid.UUID, delivery_id: uuid.UUID
) -> dict[str, Any]:
    row = await repository.get_delivery(session, principal.user_id, webhook_id, delivery_id)
    if row is None:
        raise DeliveryNotFound()
    return (await _with_attempts(session, [row]))[0]


async def _active(session: AsyncSession, principal: Principal, webhook_id: uuid.UUID) -> Rows:
    row = await repository.get_owned(session, principal.user_id, webhook_id, for_update=True)
    if row is None:
        raise WebhookNotFound()
    if not row.is_active:
        raise WebhookDisabled()
    return row


async def redeliver(
    session: AsyncSession, principal: Principal, *, webhook_id: uuid.UUID, delivery_id: uuid.UUID
) -> dict[str, Any]:
    """Send a finished delivery again: a new series of attempts, same message and id."""
    webhook = await _active(session, principal, webhook_id)
    if await repository.get_delivery(session, principal.user_id, webhook_id, delivery_id) is None:
        raise DeliveryNotFound()
    row = await repository.restart_delivery(session, delivery_id, utcnow())
    if row is None:
        raise DeliveryInProgress()
    await enqueue_delivery(session, row.id, series=row.series, retry_policy=webhook.retry_policy)
    return (await _with_attempts(session, [row]))[0]


async def send_test(session: AsyncSession, principal: Principal, *, webhook_id: uuid.UUID) -> dict[str, Any]:
    """A ``webhook.test`` delivery to this webhook only, whatever its `events`."""
    webhook = await _active(session, principal, webhook_id)
    now = utcnow()
    row = await repository.insert_delivery(
        session,
        {
            "id": new_id(),
            "webhook_id": webhook.id,
            # No outbox event: nothing else hears of a test.
            "event_id": new_id(),
            "event_type": EventType.WEBHOOK_TEST.value,
            "occurred_at": now,
            "payload": {"webhook_id": str(webhook.id), "message": TEST_MESSAGE},
            "status": DeliveryStatus.PENDING.value,
            "next_attempt_at": now,
            "created_at": now,
            "updated_at": now,
        },
    )
    await enqueue_delivery(session, row.id, series=row.series, retry_policy=webhook.retry_policy)
    return render_delivery(row, [])


# --- Attempt outcomes ---------------------------------------------------------------------------


async def cancel_delivery(session: AsyncSession, delivery_id: uuid.UUID, series: int, reason: str) -> None:
    now = utcnow()
    await repository.settle_delivery(
        session,
        delivery_id,
        series,
        {
            "status": DeliveryStatus.CANCELLED.value,
            "last_error": reason,
            "next_attempt_at": None,
            "finished_at": now,
            "updated_at": now,
        },
    )


async def record_attempt(
    session: AsyncSession,
    settings: Settings,
    *,
    target: Rows,
    attempt: dict[str, Any],
    status: DeliveryStatus,
    disable_reason: str | None = None,
) -> bool:
    """Record one attempt and its consequences: the delivery's new state (``PENDING``
    with ``attempt["next_attempt_at"]`` for a retry), the webhook's failure run, and
    disabling it (with its other pending deliveries cancelled) when the receiver is gone
    or has failed too long. True when the webhook is now disabled."""
    if not await repository.lock_delivery(session, target.id):
        return False  # deleted with its webhook while the request was out
    now = utcnow()
    number = await repository.next_attempt_number(session, target.id)
    await repository.insert_attempt(
        session, {"id": new_id(), "delivery_id": target.id, "number": number, **attempt}
    )
    final = status is not DeliveryStatus.PENDING
    await repository.settle_delivery(
        session,
        target.id,
        target.series,
        {
            "status": status.value,
            "last_status_code": attempt["status_code"],
            "last_error": attempt["error"],
            "next_attempt_at": attempt["next_attempt_at"],
            "finished_at": now if final else None,
            "updated_at": now,
        },
    )
    if status is DeliveryStatus.SUCCEEDED:
        await repository.record_success(session, target.webhook_id, now)
        return False
    run = await repository.record_failure(session, target.webhook_id, now)
    if run is None:
        return False
    if disable_reason is None:
        disable_reason = _worn_out(settings, run.consecutive_failures, run.failing_since, now)
    if disable_reason is None:
        return False
    if await repository.disable(session, target.webhook_id, disable_reason, now):
        await repository.cancel_pending(session, target.webhook_id, f"Cancelled: {disable_reason}", now)
    return True


def _worn_out(settings: Settings, failures: int, since: datetime, now: datetime) -> str | None:
    if failures >= settings.webhook_disable_after_failures:
        return f"Disabled after {failures} failed delivery attempts in a row."
    if now - since >= settings.webhook_disable_after:
        return f"Disabled after failing every delivery attempt since {rfc3339(since)}."
    return None
