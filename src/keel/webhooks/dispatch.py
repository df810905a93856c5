"""Events into deliveries: one per active webhook that takes the event's type and whose
owner may see what it is about (an outbox consumer; see ``tasks.dispatch_event``)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from keel.event_types import EventType
from keel.platform.db.base import utcnow
from keel.platform.db.ids import new_id
from keel.platform.events import Event
from keel.platform.http.errors import NotFound
from keel.platform.security.permissions import effective_permissions
from keel.platform.security.principal import Principal
from keel.sharing import access
from keel.sharing.models import Level
from keel.users import service as users
from keel.webhooks import repository
from keel.webhooks.models import DeliveryStatus
from keel.webhooks.service import enqueue_delivery


async def _subscriber(session: AsyncSession, user_id: uuid.UUID) -> Principal | None:
    """The webhook owner as a principal with their current role, or None if they may not
    receive webhooks any more (gone, deactivated, or without ``webhooks:read``)."""
    try:
        user = await users.get(session, user_id)
    except NotFound:
        return None
    principal = Principal(
        user_id=user.id, role=user.role, plan=user.plan, permissions=effective_permissions(user.role)
    )
    return principal if user.is_active and principal.can("webhooks:read") else None


async def _sees_product(session: AsyncSession, principal: Principal, event: Event) -> bool:
    if event.subject_id is None or not principal.can("products:read"):
        return False
    deleted = event.type == EventType.PRODUCT_DELETED
    level = await access.product_level_by_id(session, principal, event.subject_id, include_deleted=deleted)
    return level >= Level.VIEWER


async def _sees_folder(session: AsyncSession, principal: Principal, event: Event) -> bool:
    if event.subject_id is None or not principal.can("folders:read"):
        return False
    if event.type == EventType.FOLDER_DELETED:
        # The folder and its grants are gone: its owner and admins hear of it.
        return principal.is_admin or str(event.payload.get("owner_id")) == str(principal.user_id)
    return await access.folder_level(session, principal, event.subject_id) >= Level.VIEWER


async def _sees_job(session: AsyncSession, principal: Principal, event: Event) -> bool:
    # A job's events are its owner's alone (the worker sets the owner as the actor).
    return principal.can("jobs:read") and event.actor_id == principal.user_id


async def _sees_user(session: AsyncSession, principal: Principal, event: Event) -> bool:
    return principal.is_admin


async def _sees_alert(session: AsyncSession, principal: Principal, event: Event) -> bool:
    return principal.can("alerts:read")


# Who may hear of an event, by what it is about, judged when it is dispatched. Events
# about anything else go to nobody.
_VISIBILITY: dict[str, Callable[[AsyncSession, Principal, Event], Awaitable[bool]]] = {
    "product": _sees_product,
    "folder": _sees_folder,
    "job": _sees_job,
    "user": _sees_user,
    "alert": _sees_alert,
}


async def _may_see(session: AsyncSession, principal: Principal, event: Event) -> bool:
    check = _VISIBILITY.get(event.subject_type or "")
    return check is not None and await check(session, principal, event)


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
            allowed[webhook.owner_id] = principal is not None and await _may_see(session, principal, event)
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
