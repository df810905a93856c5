"""Redis away: answers from memory (or 503 when asked to fail closed), logged once per outage."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, MutableMapping, Sequence
from typing import Any

import pytest
from structlog.testing import capture_logs

from keel.platform.ratelimit import FallbackLimiter, Limit, LimiterUnavailable, MemoryLimiter, RedisLimiter
from keel.platform.redis_client import connect_redis
from tests.platform.ratelimit.conftest import PREFIX, FakeClock, RedisServer, free_port


def events(logs: Sequence[MutableMapping[str, Any]], name: str) -> list[MutableMapping[str, Any]]:
    return [line for line in logs if line["event"] == name]


def degraded(limiter: FallbackLimiter) -> bool:
    # A call, not the property, so mypy does not narrow it for the rest of a test.
    return limiter.degraded


class Calls:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


@pytest.fixture
async def unreachable() -> AsyncIterator[RedisLimiter]:
    client = connect_redis(f"redis://127.0.0.1:{free_port()}/0", timeout_seconds=0.25)
    yield RedisLimiter(client, prefix=PREFIX)
    await client.aclose()


async def test_an_unreachable_redis_falls_back_to_memory_and_logs_once(
    unreachable: RedisLimiter, key: str
) -> None:
    calls = Calls()
    limiter = FallbackLimiter(unreachable, MemoryLimiter(), on_fallback=calls, probe_interval=0)
    limit = Limit("user", key, 3, 60)
    with capture_logs() as logs:
        outcomes = [await limiter.hit([limit]) for _ in range(10)]

    assert [outcome.allowed for outcome in outcomes] == [True] * 3 + [False] * 7  # still enforced
    assert degraded(limiter)
    assert calls.count == 10
    assert len(events(logs, "ratelimit.redis.unavailable")) == 1
    assert events(logs, "ratelimit.redis.unavailable")[0]["log_level"] == "warning"
    assert events(logs, "ratelimit.redis.recovered") == []


async def test_fail_closed_raises_limiter_unavailable(unreachable: RedisLimiter, key: str) -> None:
    calls = Calls()
    limiter = FallbackLimiter(unreachable, MemoryLimiter(), on_fallback=calls)
    for _ in range(2):  # both when Redis fails now and while it is known to be down
        with pytest.raises(LimiterUnavailable) as raised:
            await limiter.hit([Limit("login-ip", key, 5, 60)], fail_closed=True)
        assert raised.value.status_code == 503
        assert raised.value.code == "SERVICE_UNAVAILABLE"
    assert degraded(limiter)
    assert calls.count == 0  # nothing was answered from memory


async def test_a_restarted_redis_is_used_again(redis_server: RedisServer, key: str) -> None:
    client = connect_redis(redis_server.url, timeout_seconds=0.25)
    try:
        calls = Calls()
        limiter = FallbackLimiter(
            RedisLimiter(client, prefix=PREFIX), MemoryLimiter(), on_fallback=calls, probe_interval=0
        )
        limit = Limit("user", key, 5, 60)
        with capture_logs() as logs:
            assert (await limiter.hit([limit])).decisions[0].remaining == 4
            assert not degraded(limiter)

            redis_server.stop()
            for _ in range(3):
                assert (await limiter.hit([limit])).allowed
            assert degraded(limiter)
            assert calls.count == 3

            redis_server.start()  # empty, and without the script
            assert (await limiter.hit([limit])).decisions[0].remaining == 4
            assert not degraded(limiter)
            assert calls.count == 3

        assert [line["event"] for line in logs] == [
            "ratelimit.redis.unavailable",
            "ratelimit.redis.recovered",
        ]
    finally:
        await client.aclose()


async def test_a_silent_redis_times_out_and_is_left_alone_until_the_next_probe(key: str) -> None:
    connections = 0

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while await reader.read(65536):
            pass  # reads everything, answers nothing
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = connect_redis(f"redis://127.0.0.1:{port}/0", timeout_seconds=0.1)
    try:
        clock = FakeClock()
        limiter = FallbackLimiter(
            RedisLimiter(client, prefix=PREFIX), MemoryLimiter(), probe_interval=5, clock=clock
        )
        limit = Limit("user", key, 5, 60)
        started = time.monotonic()
        assert (await limiter.hit([limit])).allowed
        assert time.monotonic() - started < 0.5  # one timeout, no retries
        assert degraded(limiter)
        probes = connections

        started = time.monotonic()
        for _ in range(10):
            assert (await limiter.hit([limit])).decisions[0].name == "user"
        assert time.monotonic() - started < 0.05  # answered from memory without waiting
        assert connections == probes

        clock.advance(5)
        await limiter.hit([limit])
        assert connections == probes + 1  # one probe after the interval
        assert degraded(limiter)
    finally:
        await client.aclose()
        server.close()
        await server.wait_closed()


async def test_a_programming_error_is_not_mistaken_for_an_outage(unreachable: RedisLimiter, key: str) -> None:
    limiter = FallbackLimiter(unreachable, MemoryLimiter())
    with pytest.raises(ValueError, match="own bucket"):
        await limiter.hit([Limit("user", key, 1, 60), Limit("user", key, 1, 60)])
    assert not degraded(limiter)
