"""The in-memory backend: least-recently-used eviction and exact byte accounting."""

from __future__ import annotations

import random

import pytest

from keel.platform.caching import MemoryCache, create_cache
from keel.platform.caching._hotkeys import HotKeys
from keel.platform.caching.base import entry_size
from tests.platform.caching.conftest import FakeClock

TTL = 60.0


async def test_a_read_keeps_an_entry_from_eviction() -> None:
    cache = MemoryCache(30)
    for name in ("k1", "k2", "k3"):
        await cache.set(name, b"12345678", ttl=TTL)
    await cache.get("k1")
    await cache.set("k4", b"12345678", ttl=TTL)
    assert await cache.get("k2") is None
    assert await cache.get("k1") is not None


async def test_dropping_an_expired_entry_for_room_is_not_an_eviction() -> None:
    clock = FakeClock()
    cache = MemoryCache(20, clock=clock)
    await cache.set("k1", b"12345678", ttl=1)
    await cache.set("k2", b"12345678", ttl=TTL)
    clock.now += 2
    await cache.set("k3", b"12345678", ttl=TTL)
    assert (await cache.stats()).evicted_entries == 0
    await cache.set("k4", b"12345678", ttl=TTL)
    assert (await cache.stats()).evicted_entries == 1


async def test_expired_entries_leave_the_size_and_count() -> None:
    clock = FakeClock()
    cache = MemoryCache(1000, clock=clock)
    await cache.set("k", b"value", ttl=1, tags=["t"])
    clock.now += 1
    assert await cache.count() == 0
    assert (await cache.stats()).current_size_bytes == 0
    assert await cache.delete("k") == 0


async def test_the_size_never_exceeds_the_budget_and_matches_the_entries() -> None:
    rng = random.Random(7)
    clock = FakeClock()
    cache = MemoryCache(2_000, clock=clock, fill_guard=0)
    live: dict[str, bytes] = {}
    for _ in range(3_000):
        key = f"k{rng.randrange(60)}"
        action = rng.random()
        if action < 0.6:
            value = b"x" * rng.randrange(0, 400)
            if await cache.set(key, value, ttl=TTL, tags=[f"t{rng.randrange(5)}"]):
                live[key] = value
        elif action < 0.8:
            await cache.delete(key)
        elif action < 0.85:
            await cache.invalidate_tags(f"t{rng.randrange(5)}")
        else:
            await cache.get(key)
        stats = await cache.stats()
        assert stats.current_size_bytes <= stats.max_size_bytes
    present = {key: value for key, value in live.items() if await cache.get(key) == value}
    expected = sum(entry_size(key, value) for key, value in present.items())
    assert (await cache.stats()).current_size_bytes == expected
    assert await cache.count() == len(present)


async def test_a_budget_below_one_byte_is_refused() -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        MemoryCache(0)


def test_hot_keys_stay_bounded_and_keep_the_most_requested() -> None:
    hot = HotKeys(capacity=3)
    for index in range(50):
        hot.record("popular")
        hot.record(f"once-{index}")
        assert len(hot) <= 6
    assert hot.top(1) == ["popular"]


def test_hot_keys_forget_what_is_no_longer_requested() -> None:
    hot = HotKeys(capacity=2)
    for _ in range(4):
        hot.record("yesterday")
    for index in range(40):
        hot.record(f"today-{index}")
    assert "yesterday" not in hot.top(10)


def test_without_redis_the_factory_makes_a_memory_cache() -> None:
    cache = create_cache(None, prefix="keel:", max_bytes=1234, timeout=0.25, fill_guard=2)
    assert isinstance(cache, MemoryCache)
    assert (cache.max_bytes, cache.fill_guard) == (1234, 2)
