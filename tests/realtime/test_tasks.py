"""The outbox consumer: alert events become ``alert`` messages on the ``alerts`` channel."""

from __future__ import annotations

import uuid
from types import SimpleNamespace
from typing import Any, cast

import orjson

from keel.platform.events import Event
from keel.platform.pubsub import MemoryBroker
from keel.platform.queue.context import JobContext
from keel.realtime.tasks import publish_alert


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
        subject_type=subject_type,
        subject_id=subject_id,
        payload={"id": str(subject_id), "severity": "critical"},
    )


async def test_alert_events_are_published_to_the_alerts_channel() -> None:
    broker, recorder = MemoryBroker(), Recorder()
    broker.subscribe("alerts", recorder)
    for event_type in ("alert.triggered", "alert.acknowledged", "alert.resolved"):
        alert_event = event(event_type, "alert")
        await publish_alert(context(broker), alert_event)
        assert recorder.messages[-1] == {
            "type": "alert",
            "data": {"event": event_type, "id": str(alert_event.id), "alert": alert_event.payload},
        }
    assert len(recorder.messages) == 3


async def test_other_events_are_not_published() -> None:
    broker, recorder = MemoryBroker(), Recorder()
    broker.subscribe("alerts", recorder)
    await publish_alert(context(broker), event("product.created", "product"))
    await publish_alert(context(broker), event("alert.triggered", None))
    assert recorder.messages == []
