"""What only the Redis limiter promises: one round trip, NOSCRIPT recovery, one limit
shared by replicas, keys that expire."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

from keel.platform.ratelimit import Limit, MemoryLimiter, RedisLimiter
from keel.platform.redis_client import connect_redis
from tests.platform.ratelimit.conftest import PREFIX, FakeClock, RedisServer


async def commands_sent(url: str, client: Redis, action: Callable[[], Awaitable[object]]) -> list[str]:
    """Every command the server received from ``client``'s connection during ``action``,
    as MONITOR reports it (commands run inside a script show as the "lua" client)."""
    address = (await client.client_info())["addr"]
    sentinel = f"end-{uuid.uuid4().hex}"
    watcher = Redis.from_url(url)
    seen: list[str] = []
    try:
        async with asyncio.timeout(5), watcher.monitor() as monitor:
            await action()
            await client.echo(sentinel)
            async for command in monitor.listen():
                if f"{command['client_address']}:{command['client_port']}" != address:
                    continue
                if sentinel in command["command"]:
                    break
                seen.append(command["command"].split(" ", 1)[0].upper())
    finally:
        await watcher.aclose()
    return seen


def three_limits(key: str) -> list[Limit]:
    return [Limit("global", key, 1000, 60), Limit("route", key, 100, 60), Limit("plan", key, 1, 7200)]


async def test_one_hit_with_three_limits_is_one_evalsha(redis_url: str, key: str) -> None:
    client = Redis.from_url(redis_url, single_connection_client=True)
    try:
        limiter = RedisLimiter(client, prefix=PREFIX)
        limits = three_limits(key)
        await limiter.hit(limits)  # the first use may load the script

        assert await commands_sent(redis_url, client, lambda: limiter.hit(limits)) == ["EVALSHA"]
    finally:
        await client.aclose()


async def test_the_script_is_loaded_again_after_a_flush(redis_server: RedisServer, key: str) -> None:
    client = Redis.from_url(redis_server.url, single_connection_client=True)
    try:
        limiter = RedisLimiter(client, prefix=PREFIX)
        limit = Limit("user", key, 3, 60)
        assert (await limiter.hit([limit])).decisions[0].remaining == 2
        await client.script_flush()

        sent = await commands_sent(redis_server.url, client, lambda: limiter.hit([limit]))
        assert sent == ["EVALSHA", "SCRIPT", "EVALSHA"]  # NOSCRIPT, SCRIPT LOAD, again
        assert (await limiter.hit([limit])).decisions[0].remaining == 0
        assert await commands_sent(redis_server.url, client, lambda: limiter.hit([limit])) == ["EVALSHA"]
    finally:
        await client.aclose()


async def test_two_replicas_share_one_limit_exactly(redis_url: str, key: str) -> None:
    clients = [connect_redis(redis_url, timeout_seconds=2) for _ in range(2)]
    try:
        replicas = [RedisLimiter(client, prefix=PREFIX) for client in clients]
        limit = Limit("user", key, 10, 60)
        outcomes = [await replicas[i % 2].hit([limit]) for i in range(20)]
        assert [outcome.allowed for outcome in outcomes] == [True] * 10 + [False] * 10
    finally:
        for client in clients:
            await client.aclose()


async def test_concurrent_hits_from_two_replicas_never_overshoot(redis_url: str, key: str) -> None:
    clients = [connect_redis(redis_url, timeout_seconds=2) for _ in range(2)]
    try:
        replicas = [RedisLimiter(client, prefix=PREFIX) for client in clients]
        limits = [Limit("user", key, 10, 60), Limit("global", key, 1000, 60)]
        outcomes = await asyncio.gather(*(replicas[i % 2].hit(limits) for i in range(50)))
        assert sum(outcome.allowed for outcome in outcomes) == 10
        # The 40 refused requests charged nothing to the looser limit.
        assert (await replicas[0].hit(limits[1:])).decisions[0].remaining == 1000 - 11
    finally:
        for client in clients:
            await client.aclose()


async def test_a_bucket_expires_once_its_charges_have_drained(redis_client: Redis, key: str) -> None:
    limiter = RedisLimiter(redis_client, prefix=PREFIX)
    limit = Limit("user", key, 10, 60)
    await limiter.hit([limit])
    assert 5_900 < await redis_client.pttl(limiter.key_for(limit)) <= 6_001
    await limiter.hit([limit])
    assert 11_900 < await redis_client.pttl(limiter.key_for(limit)) <= 12_001

    refused_only = Limit("quota", key, 1, 7200)
    await limiter.hit([refused_only])
    await limiter.hit([refused_only, Limit("other", key, 5, 60)])  # refused: writes nothing
    assert await redis_client.exists(limiter.key_for(Limit("other", key, 5, 60))) == 0


async def test_redis_and_memory_agree_on_a_mixed_sequence(redis_client: Redis, key: str) -> None:
    a, b, c = Limit("a", key, 3, 3600), Limit("b", key, 5, 3600), Limit("c", key, 4, 3600, cost=2)
    sequence = [[a, b], [b], [a, b, c], [c], [a], [a, b], [b, c], [c], [b], [b], [a, c], [b]]
    remote = RedisLimiter(redis_client, prefix=PREFIX)
    local = MemoryLimiter(clock=FakeClock())
    for limits in sequence:
        expected = await local.hit(limits)
        got = await remote.hit(limits)
        assert got.allowed == expected.allowed
        assert [(d.allowed, d.remaining) for d in got.decisions] == [
            (d.allowed, d.remaining) for d in expected.decisions
        ]
