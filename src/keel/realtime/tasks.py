"""Publish events to WebSocket clients (alerts) and events streams (all), from the
outbox.

The ``events.dispatch`` job runs after the event's transaction committed, so a rolled
back alert is never announced. Publishing is best effort: a broker that is down is
logged, not retried — the listeners lost the same connection and tell their clients to
``resync`` when it is back, which covers what was missed (a retry would also run the
webhook consumer again). Clients may see an event twice (the dispatch job is retried
when another consumer fails): ``data.id`` (the event id) tells them apart.
"""

from __future__ import annotations

import orjson
import structlog

from keel.platform import events
from keel.platform.queue.context import JobContext
from keel.realtime.service import ALERTS
from keel.realtime.stream import EVENTS, broadcast

log = structlog.get_logger("keel.realtime")


def alert_message(event: events.Event) -> tuple[bytes, bytes]:
    """The message, and the reference sent instead where it does not fit (PostgreSQL
    NOTIFY carries 8,000 bytes): the alert's id, for the client to fetch it."""
    data = {"event": event.type, "id": str(event.id)}
    full = orjson.dumps({"type": "alert", "data": {**data, "alert": event.payload}})
    reference = {"id": str(event.subject_id) if event.subject_id else event.payload.get("id")}
    small = orjson.dumps({"type": "alert", "data": {**data, "alert": reference, "truncated": True}})
    return full, small


@events.consumer("realtime")
async def publish(ctx: JobContext, event: events.Event) -> None:
    broker = ctx.resources.broker
    try:
        message, fallback = broadcast(event)
        await broker.publish(EVENTS, message, fallback=fallback)
        if event.subject_type == "alert" and event.type.startswith("alert."):
            message, fallback = alert_message(event)
            await broker.publish(ALERTS, message, fallback=fallback)
    except Exception:
        log.warning("realtime.publish_failed", event_id=str(event.id), event_type=event.type, exc_info=True)
