"""The outbox consumer: every event goes to the ``events`` channel; alert events also
become ``alert`` messages on the ``alerts`` channel."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, cast

import orjson

from keel.platform.events import Event
from keel.platform.pubsub import MemoryBroker
from keel.platform.queue.context import JobContext
from keel.realtime.tasks import publish


class Recorder:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def deliver(self, channel: str, message: bytes) -> None:
        self.messages.append(orjson.loads(message))

    def resync(self) -> None:
        pass


def context(broker: MemoryBroker) -> JobContext:
    return cast(JobContext, SimpleNamespace(resources=SimpleNamespace(broker=broker)))


def event(event_type: str, subject_type: str | None) -> Event:
    subject_id = uuid.uuid4()
    return Event(
        id=uuid.uuid4(),
        type=event_type,
        occurred_at=datetime(2026, 12, 4, 12, 0, tzinfo=UTC),
        subject_type=subject_type,
        subject_id=subject_id,
        payload={"id": str(subject_id), "severity": "critical"},
    )


async def test_alert_events_are_published_to_the_alerts_channel() -> None:
    broker, recorder = MemoryBroker(), Recorder()
    broker.subscribe("alerts", recorder)
    for event_type in ("alert.triggered", "alert.acknowledged", "alert.resolved"):
        alert_event = event(event_type, "alert")
        await publish(context(broker), alert_event)
        assert recorder.messages[-1] == {
            "type": "alert",
            "data": {"event": event_type, "id": str(alert_event.id), "alert": alert_event.payload},
        }
    assert len(recorder.messages) == 3


async def test_other_events_are_not_published_as_alerts() -> None:
    broker, recorder = MemoryBroker(), Recorder()
    broker.subscribe("alerts", recorder)
    await publish(context(broker), event("product.created", "product"))
    await publish(context(broker), event("alert.triggered", None))
    assert recorder.messages == []


async def test_every_event_is_published_to_the_events_channel() -> None:
    broker, recorder = MemoryBroker(), Recorder()
    broker.subscribe("events", recorder)
    product_event = event("product.created", "product")
    await publish(context(broker), product_event)
    await publish(context(broker), event("alert.triggered", "alert"))
    assert [message["type"] for message in recorder.messages] == ["product.created", "alert.triggered"]
    assert recorder.messages[0] == {
        "id": str(product_event.id),
        "type": "product.created",
        "occurred_at": "2026-12-04T12:00:00+00:00",
        "actor_id": None,
        "subject_type": "product",
        "subject_id": str(product_event.subject_id),
        "payload": product_event.payload,
    }
