"""``GET /events/stream``: the caller's domain events as server-sent events.

Live events come through the broker: the outbox's ``events.dispatch`` job publishes
every committed event on the ``events`` channel (after the commit, so nothing rolled
back is sent), and each open stream sends those its caller may see, judged with their
access at that moment (:mod:`keel.event_visibility`). The SSE ``id`` is the event's id.
Job progress is sent too, as ``job.progress`` without an id: it is a moment's state, not
an event to resume from (``GET /jobs/{id}`` has the latest).

Order: events are sent as they happened (by time, then id) when they arrive within
:data:`SETTLE_SECONDS` of each other; the outbox dispatches events side by side, so one
dispatched later than that comes when it arrives — its ``timestamp`` says where it
belongs.

Resuming: a client that reconnects with ``Last-Event-ID`` is first sent what it missed,
read from the events table, oldest first — at most :data:`REPLAY_LIMIT` events of the
last 24 hours. When the id is unknown or older, or more was missed, it gets
``event: reset`` instead (re-read whatever state you show), whose ``id`` is the point
to resume from next time.

Event ids are time-ordered (UUIDv7) but taken when an event is written, not when it
commits, so an event can commit just after a later one was sent. Replay therefore
starts :data:`REPLAY_OVERLAP` before the given event: an event that committed late is
not lost, and one already received may come again; clients tell them apart by id. The
same replay runs from the last event sent when the broker's connection was lost for a
while (the stream itself fills the gap; no ``resync`` needed).

A stream ends when its client falls ``KEEL_REALTIME_SEND_QUEUE`` events behind (the
client reconnects and resumes) and when its credentials lapse, checked every
``KEEL_REALTIME_RECHECK_SECONDS`` (``event: error``, then the end).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
import structlog
from sqlalchemy.ext.asyncio import AsyncSession
from sse_starlette import ServerSentEvent

from keel.event_visibility import EventFacts, candidates, may_see
from keel.platform import events
from keel.platform.db.base import utcnow
from keel.platform.queue.context import JOB_PROGRESS_CHANNEL
from keel.platform.resources import Resources
from keel.platform.security.principal import Principal
from keel.realtime import repository

log = structlog.get_logger("keel.realtime")

EVENTS = "events"
REPLAY_LIMIT = 500
REPLAY_WINDOW = timedelta(hours=24)
REPLAY_OVERLAP = timedelta(seconds=2)
# Events read, at most, to find those of one replay the caller may see: past this the
# client is told to reset rather than the database made to scan on.
REPLAY_SCAN_LIMIT = 5_000
# Newest events looked through for the id a reset resumes from.
RESET_SCAN_LIMIT = 100
# Ids already sent on this stream, so a replay does not send them again.
REMEMBERED_IDS = 2 * REPLAY_LIMIT
RESET = "reset"
# How long a live event waits for others dispatched alongside it, to be sent in order.
SETTLE_SECONDS = 0.05
JOB_PROGRESS = "job.progress"


@dataclass(frozen=True, slots=True)
class Broadcast:
    """An event as the broker carries it (see :func:`broadcast`)."""

    id: uuid.UUID
    type: str
    occurred_at: datetime
    actor_id: uuid.UUID | None
    subject_type: str | None
    subject_id: uuid.UUID | None
    payload: dict[str, Any]
    # False when the payload was too large for the broker: read the row instead.
    complete: bool = True


@dataclass(frozen=True, slots=True)
class Progress:
    job_id: str
    owner_id: str
    progress: int


@dataclass(frozen=True, slots=True)
class Anchor:
    """Where a replay starts: just after this event (or, without one, this moment)."""

    occurred_at: datetime
    id: uuid.UUID | None = None


# Put in a stream's queue when the broker reconnected: fill the gap from the table.
_GAP = object()


def broadcast(event: events.Event) -> tuple[bytes, bytes]:
    """The ``events`` channel message, and the fallback without the payload."""

    def _id(value: uuid.UUID | None) -> str | None:
        return None if value is None else str(value)

    head = {
        "id": str(event.id),
        "type": event.type,
        "occurred_at": event.occurred_at.isoformat(),
        "actor_id": _id(event.actor_id),
        "subject_type": event.subject_type,
        "subject_id": _id(event.subject_id),
    }
    return orjson.dumps({**head, "payload": event.payload}), orjson.dumps(head)


def _parse_event(message: bytes) -> Broadcast | None:
    try:
        data = orjson.loads(message)

        def _id(value: str | None) -> uuid.UUID | None:
            return None if value is None else uuid.UUID(value)

        return Broadcast(
            id=uuid.UUID(data["id"]),
            type=data["type"],
            occurred_at=datetime.fromisoformat(data["occurred_at"]),
            actor_id=_id(data["actor_id"]),
            subject_type=data["subject_type"],
            subject_id=_id(data["subject_id"]),
            payload=data.get("payload") or {},
            complete="payload" in data,
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        log.warning("realtime.bad_event_message", size=len(message))
        return None


def _parse_progress(message: bytes) -> Progress | None:
    try:
        data = orjson.loads(message)
        return Progress(str(data["job_id"]), str(data["owner_id"]), int(data["progress"]))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def _sse(event: EventFacts) -> ServerSentEvent:
    data = events.body(event.type, event.occurred_at, event.payload).decode()
    return ServerSentEvent(data, id=str(event.id), event=event.type)


def _error(code: str, message: str) -> ServerSentEvent:
    return ServerSentEvent(orjson.dumps({"code": code, "message": message}).decode(), event="error")


class EventStream:
    """One open stream: a broker subscriber with a bounded queue, and its replays."""

    def __init__(
        self,
        principal: Principal,
        resources: Resources,
        reauthenticate: Callable[[], Awaitable[Principal | None]],
    ) -> None:
        self.principal = principal
        self.resources = resources
        self._reauthenticate = reauthenticate
        self._queue: asyncio.Queue[Broadcast | Progress | object] = asyncio.Queue(
            maxsize=resources.settings.realtime_send_queue
        )
        self.overflowed = False
        self._sent: OrderedDict[uuid.UUID, None] = OrderedDict()
        self._last = Anchor(utcnow())

    # --- Subscriber (called by the broker on the event loop) ----------------------------
    def deliver(self, channel: str, message: bytes) -> None:
        item = _parse_event(message) if channel == EVENTS else _parse_progress(message)
        if item is not None:
            self._put(item)

    def resync(self) -> None:
        self._put(_GAP)

    def _put(self, item: object) -> None:
        if self.overflowed:
            return
        try:
            self._queue.put_nowait(item)
        except asyncio.QueueFull:
            self.overflowed = True

    # --- The stream ------------------------------------------------------------------
    async def run(self, last_event_id: str | None) -> AsyncIterator[ServerSentEvent]:
        broker = self.resources.broker
        stops = [broker.subscribe(EVENTS, self), broker.subscribe(JOB_PROGRESS_CHANNEL, self)]
        try:
            if last_event_id is not None:
                async for sse in self._replay(await self._anchor(last_event_id)):
                    yield sse
            async for sse in self._live():
                yield sse
        finally:
            for stop in stops:
                stop()

    async def _live(self) -> AsyncIterator[ServerSentEvent]:
        recheck = self.resources.settings.realtime_recheck_seconds
        recheck_at = time.monotonic() + recheck
        while True:
            try:
                first = await asyncio.wait_for(self._queue.get(), max(recheck_at - time.monotonic(), 0))
                batch = [first]
            except TimeoutError:
                batch = []
            if batch and isinstance(first, Broadcast):
                # Dispatch jobs run side by side, so events written a moment apart can
                # arrive swapped: let those dispatched with it arrive, and sort.
                await asyncio.sleep(SETTLE_SECONDS)
            if self.overflowed:
                log.info("realtime.stream_overflowed", user_id=str(self.principal.user_id))
                return
            if time.monotonic() >= recheck_at:
                principal = await self._reauthenticate()
                if principal is None:
                    yield _error(
                        "AUTHENTICATION_REQUIRED", "The credentials of this stream are no longer valid."
                    )
                    return
                self.principal = principal
                recheck_at = time.monotonic() + recheck
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            async for sse in self._send_batch(batch):
                yield sse

    async def _send_batch(self, batch: list[object]) -> AsyncIterator[ServerSentEvent]:
        found: list[Broadcast] = []
        for item in batch:
            if item is _GAP:
                async for sse in self._replay(self._last):
                    yield sse
            elif isinstance(item, Progress):
                if item.owner_id == str(self.principal.user_id) and self.principal.can("jobs:read"):
                    data = {"job_id": item.job_id, "progress": item.progress}
                    yield ServerSentEvent(orjson.dumps(data).decode(), event=JOB_PROGRESS)
            elif isinstance(item, Broadcast) and item.id not in self._sent:
                found.append(item)
        if not found:
            return
        found.sort(key=lambda event: (event.occurred_at, event.id))
        for event in await self._visible(found):
            yield self._send(event)

    async def _visible(self, found: list[Broadcast]) -> list[EventFacts]:
        """The events of ``found`` the caller may see. The session connects on its first
        query: most checks (alerts, jobs, users) read nothing, and a thousand streams
        hearing of one alert should not take a thousand connections."""
        visible: list[EventFacts] = []
        async with self.resources.db.reader() as session:
            for event in found:
                facts: EventFacts | None = event
                if not event.complete:
                    facts = await repository.event(session, event.id)
                if facts is not None and await may_see(session, self.principal, facts):
                    visible.append(facts)
        return visible

    def _send(self, event: EventFacts) -> ServerSentEvent:
        self._sent[event.id] = None
        if len(self._sent) > REMEMBERED_IDS:
            self._sent.popitem(last=False)
        if event.occurred_at >= self._last.occurred_at:
            self._last = Anchor(event.occurred_at, event.id)
        return _sse(event)

    # --- Replay ----------------------------------------------------------------------
    async def _anchor(self, last_event_id: str) -> Anchor | None:
        try:
            event_id = uuid.UUID(last_event_id)
        except ValueError:
            return None
        async with self.resources.db.reader() as session:
            occurred_at = await repository.event_time(session, event_id)
        return None if occurred_at is None else Anchor(occurred_at, event_id)

    async def _replay(self, anchor: Anchor | None) -> AsyncIterator[ServerSentEvent]:
        """What the caller missed since ``anchor``, or a reset when that is too much or
        too old."""
        now = utcnow()
        async with self.resources.db.reader() as session:
            if anchor is None or anchor.occurred_at < now - REPLAY_WINDOW:
                yield await self._reset(session, "unknown" if anchor is None else "too_old")
                return
            since = max(anchor.occurred_at - REPLAY_OVERLAP, now - REPLAY_WINDOW)
            rows = await repository.events_since(
                session, candidates(self.principal), since, limit=REPLAY_SCAN_LIMIT + 1
            )
            missed: list[events.Event] = []
            # Several events about one subject: its access is looked up once.
            seen: dict[tuple[str | None, uuid.UUID | None, str], bool] = {}
            for row in rows[:REPLAY_SCAN_LIMIT]:
                if row.id == anchor.id or row.id in self._sent:
                    continue
                key = (row.subject_type, row.subject_id, row.type)
                if key not in seen:
                    seen[key] = await may_see(session, self.principal, row)
                if seen[key]:
                    missed.append(row)
                    if len(missed) > REPLAY_LIMIT:
                        break
            if len(missed) > REPLAY_LIMIT or len(rows) > REPLAY_SCAN_LIMIT:
                yield await self._reset(session, "too_many")
                return
        for row in missed:
            yield self._send(row)

    async def _reset(self, session: AsyncSession, reason: str) -> ServerSentEvent:
        """``event: reset`` with the id of the newest event the caller may see (empty when
        there is none): resuming from it starts after what the client re-reads now."""
        newest = ""
        for row in await repository.newest_events(session, candidates(self.principal), RESET_SCAN_LIMIT):
            if await may_see(session, self.principal, row):
                newest = str(row.id)
                self._last = Anchor(row.occurred_at, row.id)
                break
        log.info("realtime.stream_reset", user_id=str(self.principal.user_id), reason=reason)
        return ServerSentEvent(orjson.dumps({"reason": reason}).decode(), event=RESET, id=newest)
