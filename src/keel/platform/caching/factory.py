"""One cache per process: Redis when configured, else memory."""

from __future__ import annotations

from redis.asyncio import Redis

from keel.platform.caching.base import ResourceCache
from keel.platform.caching.memory import MemoryCache
from keel.platform.caching.redis_cache import RedisCache


def create_cache(
    redis: Redis | None,
    *,
    prefix: str,
    max_bytes: int,
    timeout: float,
    fill_guard: float = 5.0,
) -> ResourceCache:
    """``redis``, ``prefix`` and ``timeout`` as for the rest of Keel (``create_redis``,
    ``KEEL_REDIS_KEY_PREFIX``, ``KEEL_REDIS_TIMEOUT_MS``)."""
    if redis is None:
        return MemoryCache(max_bytes, fill_guard=fill_guard)
    return RedisCache(redis, prefix=prefix, max_bytes=max_bytes, timeout=timeout, fill_guard=fill_guard)
