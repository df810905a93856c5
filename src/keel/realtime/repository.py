"""The counts ``system_status`` reports, in one round trip.

They read the webhooks and jobs tables directly: an operational gauge across domains
(like the admin dashboard's), where a service call per count would cost three queries.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

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
