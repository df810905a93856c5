"""Events into deliveries: one per active webhook that takes the event's type and whose
owner may see what it is about (:mod:`keel.event_visibility`; an outbox consumer, see
``tasks.dispatch_event``)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from keel.event_types import EventType
from keel.event_visibility import may_see
from keel.platform.db.base import utcnow
from keel.platform.db.ids import new_id
from keel.platform.events import Event
from keel.platform.security.principal import Principal
from keel.users import service as users
from keel.webhooks import repository
from keel.webhooks.models import DeliveryStatus
from keel.webhooks.service import enqueue_delivery


async def _subscriber(session: AsyncSession, user_id: uuid.UUID) -> Principal | None:
    """The webhook owner as a principal with their current role, or None if they may not
    receive webhooks any more (gone, deactivated, or without ``webhooks:read``)."""
    principal = await users.acting_principal(session, user_id)
    return principal if principal is not None and principal.can("webhooks:read") else None


async def dispatch(session: AsyncSession, event: Event) -> int:
    """One delivery, and one job, per active webhook that takes this event and whose owner
    may see its subject; an event dispatched again adds none. How many were created."""
    if event.type == EventType.WEBHOOK_TEST:
        return 0
    candidates = await repository.subscribers(session, event.type)
    allowed: dict[uuid.UUID, bool] = {}
    now = utcnow()
    rows: list[dict[str, Any]] = []
    policies: dict[uuid.UUID, dict[str, Any] | None] = {}
    for webhook in candidates:
        if webhook.owner_id not in allowed:
            principal = await _subscriber(session, webhook.owner_id)
            allowed[webhook.owner_id] = principal is not None and await may_see(session, principal, event)
        if not allowed[webhook.owner_id]:
            continue
        delivery_id = new_id()
        policies[delivery_id] = webhook.retry_policy
        rows.append(
            {
                "id": delivery_id,
                "webhook_id": webhook.id,
                "event_id": event.id,
                "event_type": event.type,
                "occurred_at": event.occurred_at,
                "payload": event.payload,
                "status": DeliveryStatus.PENDING.value,
                "series": 1,
                "next_attempt_at": now,
                "created_at": now,
                "updated_at": now,
            }
        )
    created = await repository.insert_deliveries(session, rows)
    for delivery_id in sorted(created):
        await enqueue_delivery(session, delivery_id, series=1, retry_policy=policies[delivery_id])
    return len(created)
