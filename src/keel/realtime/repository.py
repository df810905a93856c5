"""What the real-time side reads: the counts ``system_status`` reports, in one round
trip, and the outbox's events for the events stream's replays.

The counts read the webhooks and jobs tables directly: an operational gauge across
domains (like the admin dashboard's), where a service call per count would cost three
queries.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from keel.platform.events import Event
from keel.platform.queue.models import Job, Status
from keel.webhooks.models import DeliveryStatus, Webhook, WebhookDelivery


@dataclass(frozen=True, slots=True)
class Counts:
    active_webhooks: int
    pending_deliveries: int
    queue_depth: int


async def counts(session: AsyncSession) -> Counts:
    active = (
        select(func.count())
        .select_from(Webhook)
        .where(Webhook.is_active.is_(True), Webhook.disabled_at.is_(None))
        .scalar_subquery()
    )
    pending = (
        select(func.count())
        .select_from(WebhookDelivery)
        .where(WebhookDelivery.status == DeliveryStatus.PENDING.value)
        .scalar_subquery()
    )
    queued = select(func.count()).select_from(Job).where(Job.status == Status.QUEUED.value).scalar_subquery()
    row = (await session.execute(select(active, pending, queued))).one()
    return Counts(active_webhooks=row[0], pending_deliveries=row[1], queue_depth=row[2])


# --- The events stream's reads of the outbox ------------------------------------------


async def event(session: AsyncSession, event_id: uuid.UUID) -> Event | None:
    found: Event | None = await session.get(Event, event_id)
    return found


async def event_time(session: AsyncSession, event_id: uuid.UUID) -> datetime | None:
    occurred_at: datetime | None = await session.scalar(select(Event.occurred_at).where(Event.id == event_id))
    return occurred_at


async def events_since(
    session: AsyncSession, where: ColumnElement[bool], since: datetime, *, limit: int
) -> list[Event]:
    """Events from ``since`` on that pass ``where``, oldest first."""
    statement = (
        select(Event)
        .where(where, Event.occurred_at >= since)
        .order_by(Event.occurred_at, Event.id)
        .limit(limit)
    )
    return list((await session.scalars(statement)).all())


async def newest_events(session: AsyncSession, where: ColumnElement[bool], limit: int) -> list[Event]:
    statement = select(Event).where(where).order_by(Event.occurred_at.desc(), Event.id.desc()).limit(limit)
    return list((await session.scalars(statement)).all())
