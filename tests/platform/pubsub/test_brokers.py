"""Each broker backend against the real thing (Redis and PostgreSQL on localhost), every
test on channels of its own."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import orjson
import pytest
from redis.asyncio import Redis

from keel.platform.pubsub import Broker, MemoryBroker, PostgresBroker, RedisBroker
from keel.platform.redis_client import connect_redis
from tests import services
from tests.platform.pubsub.helpers import kill_redis_client, pg_dsn, terminate_postgres_listener


class Recorder:
    def __init__(self) -> None:
        self.messages: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        self.resynced = asyncio.Event()

    def deliver(self, channel: str, message: bytes) -> None:
        self.messages.put_nowait((channel, message))

    def resync(self) -> None:
        self.resynced.set()

    async def next(self, within: float = 2.0) -> tuple[str, bytes]:
        return await asyncio.wait_for(self.messages.get(), within)


@pytest.fixture
async def publisher(redis_url: str) -> AsyncIterator[Redis]:
    client = connect_redis(redis_url, timeout_seconds=2)
    yield client
    await client.aclose()


async def started(broker: Broker) -> Broker:
    await broker.start()
    await asyncio.wait_for(broker.connected.wait(), 5)
    return broker


@pytest.fixture(params=["memory", "redis", "postgres"])
def backend_url(request: pytest.FixtureRequest) -> tuple[str, str | None]:
    """(backend, its server's URL); the session fixtures start outside the event loop."""
    if request.param == "memory":
        return "memory", None
    return request.param, request.getfixturevalue(f"{request.param}_url")


@pytest.fixture
async def broker(backend_url: tuple[str, str | None], redis_url: str) -> AsyncIterator[Broker]:
    name, url = backend_url
    tag = uuid.uuid4().hex[:8]
    publisher = connect_redis(redis_url, timeout_seconds=2)
    instance: Broker
    if name == "redis" and url is not None:
        instance = RedisBroker(
            url,
            publisher,
            prefix=f"{services.REDIS_PREFIX}rt:{tag}:",
            timeout_seconds=2,
            reconnect_max_seconds=0.5,
        )
    elif name == "postgres" and url is not None:
        instance = PostgresBroker(
            pg_dsn(url),
            channel_name=f"keel_rt_{services.RUN_ID}_{tag}",
            probe_seconds=0.5,
            reconnect_max_seconds=0.5,
        )
    else:
        instance = MemoryBroker()
    yield await started(instance)
    await instance.close()
    await publisher.aclose()


async def test_a_message_reaches_its_channel_subscribers_only(broker: Broker) -> None:
    alerts, other = Recorder(), Recorder()
    broker.subscribe("alerts", alerts)
    broker.subscribe("other", other)
    await broker.publish("alerts", b'{"n":1}')
    channel, message = await alerts.next()
    assert (channel, orjson.loads(message)) == ("alerts", {"n": 1})
    await asyncio.sleep(0.1)
    assert other.messages.empty()


async def test_messages_arrive_in_order(broker: Broker) -> None:
    recorder = Recorder()
    broker.subscribe("alerts", recorder)
    for index in range(20):
        await broker.publish("alerts", orjson.dumps({"n": index}))
    received = [orjson.loads((await recorder.next())[1])["n"] for _ in range(20)]
    assert received == list(range(20))


async def test_an_unsubscribed_subscriber_gets_nothing(broker: Broker) -> None:
    kept, dropped = Recorder(), Recorder()
    broker.subscribe("alerts", kept)
    unsubscribe = broker.subscribe("alerts", dropped)
    unsubscribe()
    assert broker.subscriber_count("alerts") == 1
    await broker.publish("alerts", b"{}")
    await kept.next()
    await asyncio.sleep(0.1)
    assert dropped.messages.empty()


async def test_a_failing_subscriber_does_not_starve_the_others(broker: Broker) -> None:
    class Broken(Recorder):
        def deliver(self, channel: str, message: bytes) -> None:
            raise RuntimeError("boom")

    recorder = Recorder()
    broker.subscribe("alerts", Broken())
    broker.subscribe("alerts", recorder)
    await broker.publish("alerts", b"{}")
    await recorder.next()


async def test_postgres_sends_the_fallback_when_the_message_is_too_big(postgres_url: str) -> None:
    broker = await started(
        PostgresBroker(pg_dsn(postgres_url), channel_name=f"keel_rt_{services.RUN_ID}_{uuid.uuid4().hex[:8]}")
    )
    try:
        recorder = Recorder()
        broker.subscribe("alerts", recorder)
        big = orjson.dumps({"id": "1", "blob": "x" * 10_000})
        await broker.publish("alerts", big, fallback=b'{"id":"1","truncated":true}')
        assert orjson.loads((await recorder.next())[1]) == {"id": "1", "truncated": True}
        await broker.publish("alerts", big)  # no fallback: dropped, logged
        await broker.publish("alerts", b'{"id":"2"}')
        assert orjson.loads((await recorder.next())[1]) == {"id": "2"}
    finally:
        await broker.close()


async def test_redis_reconnects_and_tells_subscribers_to_resync(redis_url: str, publisher: Redis) -> None:
    broker = RedisBroker(
        redis_url,
        publisher,
        prefix=f"{services.REDIS_PREFIX}rt:{uuid.uuid4().hex[:8]}:",
        timeout_seconds=2,
        reconnect_max_seconds=0.5,
    )
    await started(broker)
    try:
        recorder = Recorder()
        broker.subscribe("alerts", recorder)
        await kill_redis_client(publisher, broker.connection_name)
        await asyncio.wait_for(recorder.resynced.wait(), 5)
        assert broker.reconnects == 1
        # Subscribed again: messages flow.
        await broker.publish("alerts", b"{}")
        await recorder.next()
    finally:
        await broker.close()


async def test_postgres_reconnects_and_tells_subscribers_to_resync(postgres_url: str) -> None:
    broker = PostgresBroker(
        pg_dsn(postgres_url),
        channel_name=f"keel_rt_{services.RUN_ID}_{uuid.uuid4().hex[:8]}",
        probe_seconds=0.5,
        reconnect_max_seconds=0.5,
    )
    await started(broker)
    try:
        recorder = Recorder()
        broker.subscribe("alerts", recorder)
        await terminate_postgres_listener(postgres_url, broker.connection_name)
        await asyncio.wait_for(recorder.resynced.wait(), 5)
        await broker.publish("alerts", b"{}")
        await recorder.next()
    finally:
        await broker.close()
