"""Both cache backends behind one harness: the memory cache on a fake clock, the Redis
cache on the real server (each test under its own key prefix) with real sleeps."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from keel.platform.caching import MemoryCache, RedisCache, ResourceCache
from tests import services


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Harness:
    """Makes caches of one backend and moves their time forward."""

    def __init__(self, backend: str, redis: Redis | None) -> None:
        self.backend = backend
        self.redis = redis
        self.clock = FakeClock()
        self.prefix = f"{services.REDIS_PREFIX}caching:{uuid.uuid4().hex[:8]}:"

    def make(self, max_bytes: int = 1_000_000, *, fill_guard: float = 0.3, **options: Any) -> ResourceCache:
        if self.redis is None:
            return MemoryCache(max_bytes, fill_guard=fill_guard, clock=self.clock, **options)
        return RedisCache(
            self.redis, prefix=self.prefix, max_bytes=max_bytes, fill_guard=fill_guard, **options
        )

    async def advance(self, seconds: float) -> None:
        """Redis expires on its own clock, so its tests really wait (keep ``seconds`` small)."""
        if self.redis is None:
            self.clock.now += seconds
        else:
            await asyncio.sleep(seconds)


@pytest.fixture(params=["memory", "redis"])
def backend_url(request: pytest.FixtureRequest) -> str | None:
    """None for the memory backend, else the Redis URL (sync: ``redis_url`` checks the
    server with ``asyncio.run``, which cannot run inside the test loop)."""
    if request.param == "memory":
        return None
    url: str = request.getfixturevalue("redis_url")
    return url


@pytest.fixture
async def harness(backend_url: str | None) -> AsyncIterator[Harness]:
    if backend_url is None:
        yield Harness("memory", None)
        return
    client = Redis.from_url(backend_url, socket_timeout=1, socket_connect_timeout=1)
    try:
        yield Harness("redis", client)
    finally:
        await client.aclose()


@pytest.fixture
def cache(harness: Harness) -> ResourceCache:
    return harness.make()


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url, socket_timeout=1, socket_connect_timeout=1)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def redis_prefix() -> str:
    return f"{services.REDIS_PREFIX}caching:{uuid.uuid4().hex[:8]}:"
