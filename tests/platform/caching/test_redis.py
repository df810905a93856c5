"""The Redis backend: round trips, sharing between processes, and outages."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import urlsplit

import pytest
from redis.asyncio import Redis
from structlog.testing import capture_logs

from keel.platform.caching import RedisCache, create_cache, redis_cache
from tests.conftest import free_port
from tests.platform.caching.proxy import Outage

TTL = 60.0


def cache_for(
    client: Redis, prefix: str, *, timeout: float = 0.25, retry_interval: float = 1.0
) -> RedisCache:
    return RedisCache(
        client, prefix=prefix, max_bytes=1_000_000, timeout=timeout, retry_interval=retry_interval
    )


def degraded(cache: RedisCache) -> bool:
    # A call, not the property: mypy would keep the property narrowed across awaits.
    return cache.degraded


async def test_a_get_is_one_get_and_a_set_one_script_call(
    redis_client: Redis, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = cache_for(redis_client, redis_prefix)
    await cache.set("warm-up", b"x", ttl=TTL, tags=["t"])  # loads the script once
    commands: list[str] = []
    execute: Callable[..., Awaitable[object]] = redis_client.execute_command

    async def spy(*args: object, **options: object) -> object:
        commands.append(str(args[0]))
        return await execute(*args, **options)

    monkeypatch.setattr(redis_client, "execute_command", spy)
    await cache.get("warm-up")
    assert commands == ["GET"]
    commands.clear()
    await cache.set("k", b"v", ttl=TTL, tags=["a", "b"])
    assert commands == ["EVALSHA"]


async def test_entries_and_invalidations_are_shared_between_processes(
    redis_url: str, redis_prefix: str
) -> None:
    first, second = Redis.from_url(redis_url), Redis.from_url(redis_url)
    try:
        a, b = cache_for(first, redis_prefix), cache_for(second, redis_prefix)
        await a.set("product:1:u", b"body", ttl=TTL, tags=["product:1"])
        assert await b.get("product:1:u") == b"body"
        assert (await b.stats()).current_size_bytes == len("product:1:u") + 4
        assert await b.invalidate_tags("product:1") == 1
        assert await a.get("product:1:u") is None
        # The fill guard is shared too: A's late fill is refused after B's invalidation.
        assert not await a.set("product:1:u", b"stale", ttl=TTL, tags=["product:1"])
    finally:
        await first.aclose()
        await second.aclose()


async def test_keys_live_under_the_deployment_prefix(redis_client: Redis, redis_prefix: str) -> None:
    cache = cache_for(redis_client, redis_prefix)
    await cache.set("k", b"v", ttl=TTL, tags=["t"])
    names = {name.decode() async for name in redis_client.scan_iter(match=f"{redis_prefix}*")}
    assert f"{redis_prefix}cache:e:k" in names
    assert all(name.startswith(f"{redis_prefix}cache:") for name in names)
    assert 0 < await redis_client.pttl(f"{redis_prefix}cache:e:k") <= TTL * 1000
    await cache.clear()
    assert [name async for name in redis_client.scan_iter(match=f"{redis_prefix}cache:e:*")] == []


async def test_a_client_that_decodes_responses_is_refused(redis_url: str) -> None:
    client = Redis.from_url(redis_url, decode_responses=True)
    try:
        with pytest.raises(ValueError, match="decode"):
            cache_for(client, "x:")
    finally:
        await client.aclose()


# --- outages ------------------------------------------------------------------------


@pytest.fixture
async def dead_client() -> AsyncIterator[Redis]:
    client = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.2)
    try:
        yield client
    finally:
        await client.aclose()


async def test_with_redis_unreachable_reads_miss_and_writes_do_nothing(
    dead_client: Redis, redis_prefix: str
) -> None:
    cache = cache_for(dead_client, redis_prefix, timeout=0.2, retry_interval=0)
    with capture_logs() as logs:
        assert await cache.get("k") is None
        assert not await cache.set("k", b"v", ttl=TTL, tags=["t"])
        assert await cache.delete("k") == 0
        assert await cache.invalidate_tags("t") == 0
        assert await cache.invalidate_pattern("*") == 0
        await cache.clear()
        stats = await cache.stats()
        assert await cache.count() == 0
    assert degraded(cache)
    assert (stats.cache_misses, stats.cache_hits, stats.current_size_bytes) == (1, 0, 0)
    assert [log["event"] for log in logs] == ["cache.redis.unavailable"]
    assert logs[0]["log_level"] == "warning"


async def test_while_degraded_redis_is_left_alone_until_the_retry_interval(
    dead_client: Redis, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = cache_for(dead_client, redis_prefix, timeout=0.2, retry_interval=60)
    await cache.get("k")
    calls = 0
    execute: Callable[..., Awaitable[object]] = dead_client.execute_command

    async def counting(*args: object, **options: object) -> object:
        nonlocal calls
        calls += 1
        return await execute(*args, **options)

    monkeypatch.setattr(dead_client, "execute_command", counting)
    for _ in range(5):
        assert await cache.get("k") is None
    assert calls == 0


async def test_an_outage_logs_once_and_recovery_replays_lost_invalidations(
    redis_url: str, redis_prefix: str
) -> None:
    upstream = urlsplit(redis_url)
    async with Outage(upstream.hostname or "127.0.0.1", upstream.port or 6379) as outage:
        client = Redis.from_url(outage.url, socket_timeout=0.2, socket_connect_timeout=0.2)
        direct = Redis.from_url(redis_url)
        cache = cache_for(client, redis_prefix, timeout=0.2, retry_interval=0)
        try:
            await cache.set("product:1:bob", b"bob may see it", ttl=TTL, tags=["product:1"])
            await cache.set("product:2:bob", b"unrelated", ttl=TTL, tags=["product:2"])
            with capture_logs() as logs:
                await outage.cut()
                # Access revoked while Redis is out of reach: the invalidation cannot land.
                assert await cache.invalidate_tags("product:1") == 0
                assert await cache.get("product:2:bob") is None
                assert degraded(cache)
                await outage.restore()
                # The first call after the outage starts the replay and is still a miss,
                # even for an entry that is in Redis.
                assert await cache.get("product:2:bob") is None
                for _ in range(50):
                    if not degraded(cache):
                        break
                    await asyncio.sleep(0.02)
                assert not degraded(cache)
                assert await cache.get("product:1:bob") is None
                assert await cache.get("product:2:bob") == b"unrelated"
            assert await direct.exists(f"{redis_prefix}cache:e:product:1:bob") == 0
            assert [log["event"] for log in logs] == ["cache.redis.unavailable", "cache.redis.recovered"]
        finally:
            await cache.close()
            await client.aclose()
            await direct.aclose()


async def test_a_server_that_comes_back_is_used_again(redis_url: str, redis_prefix: str) -> None:
    upstream = urlsplit(redis_url)
    async with Outage(upstream.hostname or "127.0.0.1", upstream.port or 6379) as outage:
        client = Redis.from_url(outage.url, socket_timeout=0.2, socket_connect_timeout=0.2)
        cache = cache_for(client, redis_prefix, timeout=0.2, retry_interval=0)
        try:
            await outage.cut()
            assert not await cache.set("k", b"v", ttl=TTL)
            assert degraded(cache)
            await outage.restore()
            with capture_logs() as logs:
                assert await cache.set("k", b"v", ttl=TTL)
            assert not degraded(cache)
            assert await cache.get("k") == b"v"
            assert [log["event"] for log in logs] == ["cache.redis.recovered"]
        finally:
            await client.aclose()


async def test_a_server_that_never_answers_costs_a_read_at_most_the_timeout(redis_prefix: str) -> None:
    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(65536):
            pass
        writer.close()

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    # The client's own timeouts are far longer: the cache bounds the call itself.
    client = Redis.from_url(f"redis://127.0.0.1:{port}/0", socket_timeout=5, socket_connect_timeout=5)
    cache = cache_for(client, redis_prefix, timeout=0.1, retry_interval=60)
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await cache.get("k") is None
        assert loop.time() - started < 0.5
        assert degraded(cache)
        started = loop.time()
        assert await cache.get("k") is None
        assert loop.time() - started < 0.01
    finally:
        await client.aclose()
        server.close()


async def test_a_large_tag_is_invalidated_in_bounded_steps(
    redis_client: Redis, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redis_cache, "_BATCH", 4)
    cache = cache_for(redis_client, redis_prefix)
    for index in range(10):
        await cache.set(f"product:{index}:u", b"v", ttl=TTL, tags=["folder-tree", f"product:{index % 5}"])
    await cache.set("product:x:u", b"v", ttl=TTL, tags=["product:x"])
    calls: list[int] = []
    script = cache._invalidate

    async def spy(args: list[str | int]) -> list[int]:
        dropped, left = await script(args=args)
        calls.append(int(dropped))
        return [dropped, left]

    monkeypatch.setattr(cache, "_invalidate", spy)
    assert await cache.invalidate_tags("product:0", "folder-tree") == 10
    assert max(calls) <= 4
    assert await cache.count() == 1
    assert await redis_client.exists(f"{redis_prefix}cache:t:folder-tree") == 0


async def test_an_invalidation_lost_while_a_probe_runs_is_replayed_before_serving(
    redis_url: str, redis_prefix: str
) -> None:
    upstream = urlsplit(redis_url)
    async with Outage(upstream.hostname or "127.0.0.1", upstream.port or 6379) as outage:
        client = Redis.from_url(outage.url, socket_timeout=0.2, socket_connect_timeout=0.2)
        cache = cache_for(client, redis_prefix, timeout=0.5, retry_interval=60)
        try:
            await cache.set("product:1:bob", b"old", ttl=TTL, tags=["product:1"])
            await outage.cut()
            assert await cache.get("other") is None
            assert degraded(cache)
            await outage.restore()
            cache._retry_at = 0.0  # the interval is over: the next call probes
            probe = asyncio.ensure_future(cache.get("other"))
            await asyncio.sleep(0)  # the probe is in flight; this call does not probe
            assert await cache.invalidate_tags("product:1") == 0
            assert await probe is None
            for _ in range(50):
                if not degraded(cache):
                    break
                await asyncio.sleep(0.02)
            assert not degraded(cache)
            assert await cache.get("product:1:bob") is None
        finally:
            await cache.close()
            await client.aclose()


def test_with_redis_the_factory_makes_a_redis_cache(redis_client: Redis) -> None:
    cache = create_cache(redis_client, prefix="keel:", max_bytes=1234, timeout=0.25)
    assert isinstance(cache, RedisCache)
    assert cache.max_bytes == 1234
