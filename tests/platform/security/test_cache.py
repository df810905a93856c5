"""The per-process TTL cache behind session and API-key checks."""

from __future__ import annotations

import asyncio
import time

import pytest

from keel.platform.cache import TotalCache, TTLCache


def test_entries_expire(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    cache: TTLCache[str, int] = TTLCache(ttl=1.0)
    cache.put("a", 1)
    assert cache.get("a") == 1
    now[0] += 1.5
    assert cache.get("a") is None
    assert len(cache) == 0


def test_size_is_bounded_oldest_first() -> None:
    cache: TTLCache[int, int] = TTLCache(ttl=60, max_entries=3)
    for key in range(5):
        cache.put(key, key)
    assert [cache.get(key) for key in range(5)] == [None, None, 2, 3, 4]


def test_zero_ttl_caches_nothing() -> None:
    cache: TTLCache[str, int] = TTLCache(ttl=0)
    cache.put("a", 1)
    assert cache.get("a") is None


def test_evict_and_clear() -> None:
    cache: TTLCache[str, int] = TTLCache(ttl=60)
    cache.put("a", 1)
    cache.put("b", 2)
    cache.evict("a")
    assert cache.get("a") is None
    cache.clear()
    assert cache.get("b") is None


async def test_concurrent_misses_share_one_load() -> None:
    cache: TTLCache[str, int] = TTLCache(ttl=60)
    calls = 0

    async def load() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        return 42

    results = await asyncio.gather(*(cache.get_or_load("k", load) for _ in range(20)))
    assert results == [42] * 20
    assert calls == 1
    assert await cache.get_or_load("k", load) == 42
    assert calls == 1


async def test_a_failed_load_reaches_every_waiter_and_caches_nothing() -> None:
    cache: TTLCache[str, int] = TTLCache(ttl=60)

    async def load() -> int:
        await asyncio.sleep(0.01)
        raise RuntimeError("database down")

    results = await asyncio.gather(*(cache.get_or_load("k", load) for _ in range(5)), return_exceptions=True)
    assert all(isinstance(result, RuntimeError) for result in results)
    assert cache.get("k") is None


async def test_a_cached_none_is_a_hit() -> None:
    cache: TTLCache[str, int | None] = TTLCache(ttl=60)

    async def load() -> int | None:
        return None

    assert await cache.get_or_load("gone", load) is None

    async def fail() -> int | None:
        raise AssertionError("not called again")

    assert await cache.get_or_load("gone", fail) is None


async def test_list_totals_missed_together_are_counted_once() -> None:
    totals = TotalCache(ttl=60)
    assert totals.lead("k") is None  # the first to miss counts
    waiting = totals.lead("k")
    assert waiting is not None
    assert totals.lead("k") is waiting
    totals.finish("k", 42)
    assert await waiting == 42
    assert totals.get("k") == 42
    assert totals.lead("other") is None  # another key is counted on its own


async def test_a_failed_count_lets_the_waiters_count_and_caches_nothing() -> None:
    totals = TotalCache(ttl=60)
    assert totals.lead("k") is None
    waiting = totals.lead("k")
    assert waiting is not None
    totals.finish("k", None)
    assert await waiting is None
    assert totals.get("k") is None
    assert totals.lead("k") is None  # the next miss counts again
