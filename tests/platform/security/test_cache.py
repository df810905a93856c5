"""The per-process TTL cache behind session and API-key checks."""

from __future__ import annotations

import time

import pytest

from keel.platform.cache import TTLCache


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
