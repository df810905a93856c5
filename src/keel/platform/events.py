"""Transactional outbox: domain events are rows written in the same transaction as the
change they describe, so a rolled-back change announces nothing.

Each event enqueues one ``events.dispatch`` job in that transaction; the job hands the
event to every registered consumer (webhook deliveries, real-time fan-out). Consumers
may see an event more than once (the job is retried when one fails) and must be
idempotent.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import structlog
from sqlalchemy import JSON, ForeignKey, String, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from keel.platform.db.base import Base, IdMixin, utcnow
from keel.platform.db.ids import new_id
from keel.platform.queue.context import JobContext
from keel.platform.queue.enqueue import enqueue
from keel.platform.queue.registry import task

log = structlog.get_logger("keel.events")

DISPATCH_TASK = "events.dispatch"
PURGE_TASK = "events.purge"


class Event(IdMixin, Base):
    __tablename__ = "events"

    type: Mapped[str] = mapped_column(String(64))
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    # Who caused it (None for the system).
    actor_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    # What it is about, for visibility checks: ("product", id), ("folder", id), ...
    subject_type: Mapped[str | None] = mapped_column(String(32), default=None)
    subject_id: Mapped[uuid.UUID | None] = mapped_column(default=None, index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def body(event_type: str, occurred_at: datetime, payload: Mapping[str, Any]) -> bytes:
    """An event as clients receive it, by webhook or on the events stream (Standard
    Webhooks' payload shape)."""
    return orjson.dumps({"type": event_type, "timestamp": rfc3339(occurred_at), "data": payload})


Consumer = Callable[[JobContext, Event], Awaitable[None]]
_consumers: dict[str, Consumer] = {}


def consumer(name: str) -> Callable[[Consumer], Consumer]:
    """Register ``fn`` to receive every event (by a stable name; re-registering replaces)."""

    def register(fn: Consumer) -> Consumer:
        _consumers[name] = fn
        return fn

    return register


async def emit(
    session: AsyncSession,
    event_type: str,
    payload: Mapping[str, Any],
    *,
    subject_type: str | None = None,
    subject_id: uuid.UUID | None = None,
    actor_id: uuid.UUID | None = None,
) -> uuid.UUID:
    """Record an event in the caller's transaction and schedule its dispatch.

    ``payload`` may hold datetimes and UUIDs: it is stored as its JSON form.
    """
    event_id = new_id()
    await session.execute(
        insert(Event),
        [
            {
                "id": event_id,
                "type": event_type,
                "occurred_at": utcnow(),
                "actor_id": actor_id,
                "subject_type": subject_type,
                "subject_id": subject_id,
                # default=str: asyncpg returns its own UUID type, which orjson does not know.
                "payload": orjson.loads(orjson.dumps(payload, default=str)),
            }
        ],
    )
    await enqueue(session, DISPATCH_TASK, {"event_id": str(event_id)})
    return event_id


@task(DISPATCH_TASK, max_attempts=10, timeout=60.0)
async def dispatch(ctx: JobContext) -> dict[str, Any]:
    event_id = uuid.UUID(ctx.payload["event_id"])
    async with ctx.resources.db.reader() as session:
        event = (await session.execute(select(Event).where(Event.id == event_id))).scalar_one_or_none()
    if event is None:  # removed by retention before it was dispatched
        log.warning("events.dispatch.missing", event_id=str(event_id))
        return {"consumers": 0}
    for name, fn in _consumers.items():
        log.debug("events.dispatch", event_id=str(event_id), consumer=name)
        await fn(ctx, event)
    return {"consumers": len(_consumers)}


@task(PURGE_TASK, max_attempts=3, timeout=600.0)
async def purge(ctx: JobContext) -> dict[str, Any]:
    """Events older than the job retention: their dispatch is long done."""
    cutoff = utcnow() - timedelta(days=ctx.resources.settings.job_retention_days)
    async with ctx.transaction() as session:
        result = await session.execute(delete(Event).where(Event.occurred_at < cutoff))
    return {"deleted": result.rowcount}  # type: ignore[attr-defined]
