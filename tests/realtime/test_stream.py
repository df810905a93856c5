"""``GET /events/stream``: who hears what, ids and order, resuming with ``Last-Event-ID``
(replay and reset), pings, job progress, and the ends of a stream."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import insert, select

from keel.platform.db.base import utcnow
from keel.platform.db.ids import new_id
from keel.platform.events import Event
from keel.platform.queue.context import JOB_PROGRESS_CHANNEL
from keel.realtime.stream import REPLAY_LIMIT, EventStream
from keel.users.models import Role
from tests.catalog import create_product, product_url, share
from tests.identity import TestUser
from tests.realtime.conftest import REALTIME_TEST_SETTINGS, Served, serving

STREAM = "/api/v2/events/stream"
EXPORT_JOBS = "/api/v2/products/export-jobs"
STREAM_SETTINGS: dict[str, object] = {
    **REALTIME_TEST_SETTINGS,
    "realtime_ping_seconds": 0.3,
    "realtime_recheck_seconds": 0.3,
    # Events reach streams through the outbox's dispatch jobs.
    "worker_in_process": True,
}


@dataclass
class Message:
    event: str | None = None
    id: str | None = None
    data: str = ""
    comments: list[str] = field(default_factory=list)

    def json(self) -> Any:
        return orjson.loads(self.data)


class Reader:
    """Reads a ``text/event-stream`` body one message at a time."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()

    async def message(self, within: float = 3.0, *, pings: bool = False) -> Message:
        """The next event (pings skipped unless ``pings``: then comments count too)."""
        async with asyncio.timeout(within):
            current = Message()
            while True:
                line = await anext(self._lines)
                if line == "":
                    if current.event is not None or current.data or (pings and current.comments):
                        return current
                    current = Message()
                elif line.startswith(":"):
                    current.comments.append(line[1:].strip())
                else:
                    name, _, value = line.partition(":")
                    value = value.removeprefix(" ")
                    if name == "data":
                        current.data = value if not current.data else current.data + "\n" + value
                    elif name in ("event", "id"):
                        setattr(current, name, value)

    async def events(self, count: int, within: float = 5.0) -> list[Message]:
        return [await self.message(within) for _ in range(count)]

    async def nothing_for(self, seconds: float) -> None:
        try:
            message = await self.message(seconds)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected event {message}")


@pytest.fixture(scope="module")
async def served(backend_settings: dict[str, Any]) -> AsyncIterator[Served]:
    async with serving({**backend_settings, **STREAM_SETTINGS}) as result:
        yield result


@asynccontextmanager
async def stream(served: Served, user: TestUser, **headers: str) -> AsyncIterator[Reader]:
    async with served.http.stream("GET", STREAM, headers={**user.headers, **headers}, timeout=10) as response:
        assert response.status_code == 200, await response.aread()
        yield Reader(response)


async def until_subscribed(served: Served, count: int = 1) -> None:
    """The stream's generator runs (and has subscribed) once the hub counts it."""
    async with asyncio.timeout(3):
        while True:
            if len(served.app.state.realtime.streams) >= count:
                return
            await asyncio.sleep(0.01)


async def event_ids(served: Served, subject_id: str) -> list[str]:
    async with served.resources.db.reader() as session:
        rows = await session.scalars(
            select(Event.id)
            .where(Event.subject_id == uuid.UUID(subject_id))
            .order_by(Event.occurred_at, Event.id)
        )
        return [str(row) for row in rows]


async def test_a_stream_needs_credentials(served: Served) -> None:
    response = await served.http.get(STREAM)
    assert response.status_code == 401
    assert response.json()["errors"][0]["code"] == "AUTHENTICATION_REQUIRED"


async def test_a_tampered_token_is_refused(served: Served) -> None:
    user = await served.accounts.create()
    header, payload, signature = user.access_token.split(".")
    forged = f"{header}.{payload}.{signature[::-1]}"
    response = await served.http.get(STREAM, headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401


async def test_an_oversized_last_event_id_is_refused(served: Served) -> None:
    user = await served.accounts.create()
    response = await served.http.get(STREAM, headers={**user.headers, "Last-Event-ID": "x" * 65})
    assert response.status_code == 422
    assert response.json()["errors"][0]["code"] == "VALIDATION_ERROR"


async def test_the_stream_is_unbuffered_and_not_cached(served: Served) -> None:
    user = await served.accounts.create()
    async with stream(served, user) as reader:
        headers = reader.response.headers
    assert headers["content-type"].startswith("text/event-stream")
    assert headers["x-accel-buffering"] == "no"
    assert headers["cache-control"] == "no-store"


async def test_own_changes_arrive_in_order_with_event_ids(served: Served) -> None:
    user = await served.accounts.create()
    async with stream(served, user) as reader:
        await until_subscribed(served)
        products = [await create_product(served.http, user, name=f"Ordered {index}") for index in range(3)]
        received = await reader.events(3)
    assert [message.event for message in received] == ["product.created"] * 3
    assert [message.json()["data"]["id"] for message in received] == [product["id"] for product in products]
    for message, product in zip(received, products, strict=True):
        assert [message.id] == await event_ids(served, product["id"])
        body = message.json()
        assert body["type"] == "product.created"
        assert body["timestamp"].endswith("Z")
        assert body["data"]["name"] == product["name"]


async def test_a_stranger_hears_nothing_of_products_they_cannot_see(served: Served) -> None:
    owner, stranger = await served.accounts.create(), await served.accounts.create()
    async with stream(served, stranger) as reader:
        await until_subscribed(served)
        await create_product(served.http, owner, name="Private")
        mine = await create_product(served.http, stranger, name="Mine")
        message = await reader.message()
        await reader.nothing_for(0.5)
    assert message.json()["data"]["id"] == mine["id"]


async def test_sharing_a_product_lets_the_grantee_hear_of_it(served: Served) -> None:
    owner, grantee = await served.accounts.create(), await served.accounts.create()
    product = await create_product(served.http, owner, name="Shared later")
    await share(served.http, owner, product_url(product["id"]), grantee, "viewer")
    async with stream(served, grantee) as reader:
        await until_subscribed(served)
        response = await served.http.patch(
            product_url(product["id"]), json={"stock": 7}, headers=owner.headers
        )
        assert response.status_code == 200, response.text
        # The creation may come first: judged when it is dispatched, it is visible now.
        message = await reader.message()
        if message.event == "product.created":
            message = await reader.message()
    assert message.event == "product.updated"
    assert message.json()["data"]["stock"] == 7


async def test_last_event_id_replays_what_was_missed_in_order(served: Served) -> None:
    user = await served.accounts.create()
    async with stream(served, user) as reader:
        await until_subscribed(served)
        await create_product(served.http, user, name="Seen")
        seen = await reader.message()
    missed = [await create_product(served.http, user, name=f"Missed {index}") for index in range(3)]
    async with stream(served, user, **{"Last-Event-ID": str(seen.id)}) as reader:
        replayed = await reader.events(3)
        await reader.nothing_for(0.5)
    assert [message.json()["data"]["id"] for message in replayed] == [product["id"] for product in missed]
    assert [message.id for message in replayed] == [(await event_ids(served, p["id"]))[0] for p in missed]


async def test_an_unknown_last_event_id_gets_a_reset_to_resume_from(served: Served) -> None:
    user = await served.accounts.create()
    product = await create_product(served.http, user, name="Newest")
    for unknown in (str(uuid.uuid4()), "not-an-id"):
        async with stream(served, user, **{"Last-Event-ID": unknown}) as reader:
            reset = await reader.message()
        assert reset.event == "reset"
        assert reset.json() == {"reason": "unknown"}
        # The newest event this user may see: resuming from it misses nothing.
        assert [reset.id] == await event_ids(served, product["id"])


async def insert_job_events(served: Served, user: TestUser, count: int, *, hours_ago: float = 0) -> list[str]:
    """``count`` job events of ``user``'s, written straight to the table (not published)."""
    start = utcnow() - timedelta(hours=hours_ago)
    rows = [
        {
            "id": new_id(),
            "type": "job.succeeded",
            "occurred_at": start + timedelta(milliseconds=index),
            "actor_id": user.id,
            "subject_type": "job",
            "subject_id": uuid.uuid4(),
            "payload": {"index": index},
        }
        for index in range(count)
    ]
    async with served.resources.db.writer() as session:
        await session.execute(insert(Event), rows)
        await session.commit()
    return [str(row["id"]) for row in rows]


async def test_an_event_older_than_a_day_gets_a_reset(served: Served) -> None:
    user = await served.accounts.create()
    (old,) = await insert_job_events(served, user, 1, hours_ago=25)
    async with stream(served, user, **{"Last-Event-ID": old}) as reader:
        reset = await reader.message()
    assert reset.event == "reset"
    assert reset.json() == {"reason": "too_old"}


async def test_more_than_the_replay_limit_missed_gets_a_reset(served: Served) -> None:
    user = await served.accounts.create()
    (anchor,) = await insert_job_events(served, user, 1, hours_ago=0.5)
    ids = await insert_job_events(served, user, REPLAY_LIMIT + 1)
    async with stream(served, user, **{"Last-Event-ID": anchor}) as reader:
        reset = await reader.message()
    assert reset.event == "reset"
    assert reset.json() == {"reason": "too_many"}
    assert reset.id == ids[-1]


async def test_exactly_the_replay_limit_is_replayed(served: Served) -> None:
    user = await served.accounts.create()
    (anchor,) = await insert_job_events(served, user, 1, hours_ago=0.5)
    ids = await insert_job_events(served, user, REPLAY_LIMIT)
    async with stream(served, user, **{"Last-Event-ID": anchor}) as reader:
        replayed = await reader.events(REPLAY_LIMIT)
    assert [message.id for message in replayed] == ids


async def test_another_users_jobs_are_not_replayed(served: Served) -> None:
    user, other = await served.accounts.create(), await served.accounts.create()
    (anchor,) = await insert_job_events(served, user, 1, hours_ago=0.5)
    await insert_job_events(served, other, 3)
    mine = await insert_job_events(served, user, 1)
    async with stream(served, user, **{"Last-Event-ID": anchor}) as reader:
        assert (await reader.message()).id == mine[0]
        await reader.nothing_for(0.5)


async def test_pings_keep_the_stream_alive(served: Served) -> None:
    user = await served.accounts.create()
    async with stream(served, user) as reader:
        message = await reader.message(2.0, pings=True)
    assert message.event is None
    assert message.comments
    assert message.comments[0].startswith("ping")


async def test_a_broker_gap_is_filled_from_the_table(served: Served) -> None:
    user = await served.accounts.create()
    async with stream(served, user) as reader:
        await until_subscribed(served)
        await create_product(served.http, user, name="Before the gap")
        await reader.message()
        # Written while the broker was away: never published, found by the replay.
        lost = await insert_job_events(served, user, 2)
        streams = [s for s in served.app.state.realtime.streams if isinstance(s, EventStream)]
        for item in streams:
            item.resync()
        assert [message.id for message in await reader.events(2)] == lost


async def test_job_progress_and_outcome_reach_the_owner_only(served: Served) -> None:
    owner, other = await served.accounts.create(), await served.accounts.create()
    for index in range(3):
        await create_product(served.http, owner, name=f"Exported {index}")
    async with stream(served, owner) as mine, stream(served, other) as theirs:
        await until_subscribed(served, 2)
        response = await served.http.post(
            EXPORT_JOBS, json={"format": "ndjson", "async_processing": True}, headers=owner.headers
        )
        assert response.status_code == 202, response.text
        job_id = response.json()["data"]["job_id"]
        received = [await mine.message(10.0)]
        while received[-1].event != "job.succeeded":
            received.append(await mine.message(10.0))
        await theirs.nothing_for(0.5)
    progress = [message for message in received if message.event == "job.progress"]
    assert progress
    assert all(message.id is None for message in progress)
    assert all(message.json()["job_id"] == job_id for message in progress)
    assert received[-1].id is not None
    assert received[-1].json()["data"]["id"] == job_id


async def test_progress_of_someone_elses_job_is_not_sent(served: Served) -> None:
    user = await served.accounts.create()
    async with stream(served, user) as reader:
        await until_subscribed(served)
        broker = served.resources.broker
        for owner in (uuid.uuid4(), user.id):
            message = {"job_id": str(uuid.uuid4()), "owner_id": str(owner), "progress": 40}
            await broker.publish(JOB_PROGRESS_CHANNEL, orjson.dumps(message))
        received = await reader.message()
    assert received.event == "job.progress"
    assert received.json()["progress"] == 40


async def test_a_revoked_session_ends_the_stream(served: Served) -> None:
    user = await served.accounts.create()
    async with stream(served, user) as reader:
        await until_subscribed(served)
        response = await served.http.post("/api/v2/auth/logout", headers=user.headers)
        assert response.status_code == 204
        message = await reader.message(3.0)
        assert message.event == "error"
        assert message.json()["code"] == "AUTHENTICATION_REQUIRED"
        with pytest.raises(StopAsyncIteration):
            await reader.message(3.0)


async def test_streams_beyond_the_limit_are_refused(backend_settings: dict[str, Any]) -> None:
    async with serving({**backend_settings, **STREAM_SETTINGS, "realtime_max_streams": 1}) as served:
        user = await served.accounts.create(role=Role.USER)
        async with stream(served, user):
            await until_subscribed(served)
            refused = await served.http.get(STREAM, headers=user.headers)
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "5"
        await asyncio.sleep(0.1)
        async with stream(served, user) as reader:
            assert reader.response.status_code == 200
