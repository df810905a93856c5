"""The embedded cache: one process's LRU under a byte budget, with TTLs and tags."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from keel.platform.caching._glob import glob_regex
from keel.platform.caching._hotkeys import HotKeys
from keel.platform.caching.base import CacheStats, ResourceCache, entry_size


@dataclass(slots=True)
class _Entry:
    value: bytes
    expires_at: float
    size: int
    tags: tuple[str, ...]


class MemoryCache(ResourceCache):
    """Least recently used entries go first once ``max_bytes`` would be exceeded.

    Every method runs to completion without awaiting, so on the event loop no lock is
    needed and no other task sees a half-made change. get and set are O(1) plus the
    entry's tags; pattern invalidation, ``count`` and ``stats`` walk the entries (admin
    operations, bounded by the budget).

    Per process: correct for the embedded mode's single process. Several processes
    would each hold their own copy and miss each other's invalidations — use Redis.
    """

    def __init__(
        self,
        max_bytes: int,
        *,
        fill_guard: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        hot_keys: int = 10_000,
    ) -> None:
        if max_bytes < 1:
            raise ValueError("max_bytes must be at least 1")
        self.max_bytes = max_bytes
        self.fill_guard = fill_guard
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._tagged: dict[str, set[str]] = {}
        # tag -> until when sets carrying it are refused (see ResourceCache.fill_guard).
        self._guards: dict[str, float] = {}
        self._bytes = 0
        self._hits = 0
        self._misses = 0
        self._evicted = 0
        self._hot = HotKeys(hot_keys)

    async def get(self, key: str) -> bytes | None:
        self._hot.record(key)
        entry = self._entries.get(key)
        if entry is not None and entry.expires_at <= self._clock():
            self._remove(key)
            entry = None
        if entry is None:
            self._misses += 1
            return None
        self._entries.move_to_end(key)
        self._hits += 1
        return entry.value

    async def set(self, key: str, value: bytes, *, ttl: float, tags: Sequence[str] = ()) -> bool:
        now = self._clock()
        if ttl <= 0 or self._guarded(tags, now):
            return False
        self._remove(key)  # the old value is stale whether or not the new one fits
        size = entry_size(key, value)
        if size > self.max_bytes:
            return False
        unique_tags = tuple(dict.fromkeys(tags))
        self._entries[key] = _Entry(value, now + ttl, size, unique_tags)
        self._bytes += size
        for tag in unique_tags:
            self._tagged.setdefault(tag, set()).add(key)
        while self._bytes > self.max_bytes:
            oldest, entry = next(iter(self._entries.items()))
            self._remove(oldest)
            if entry.expires_at > now:  # dropping an expired entry is not an eviction
                self._evicted += 1
        return True

    async def delete(self, *keys: str) -> int:
        now = self._clock()
        dropped = 0
        for key in keys:
            entry = self._remove(key)
            if entry is not None and entry.expires_at > now:
                dropped += 1
        return dropped

    async def invalidate_tags(self, *tags: str) -> int:
        now = self._clock()
        if self.fill_guard > 0:
            if len(self._guards) > 1024:
                self._guards = {tag: until for tag, until in self._guards.items() if until > now}
            for tag in tags:
                self._guards[tag] = now + self.fill_guard
        dropped = 0
        for tag in tags:
            for key in list(self._tagged.get(tag, ())):
                entry = self._remove(key)
                if entry is not None and entry.expires_at > now:
                    dropped += 1
        return dropped

    async def invalidate_pattern(self, pattern: str) -> int:
        matches = glob_regex(pattern).fullmatch
        return await self.delete(*[key for key in self._entries if matches(key)])

    async def stats(self) -> CacheStats:
        self._drop_expired()
        return CacheStats.of(
            hits=self._hits,
            misses=self._misses,
            evicted=self._evicted,
            size_bytes=self._bytes,
            max_bytes=self.max_bytes,
        )

    async def count(self) -> int:
        self._drop_expired()
        return len(self._entries)

    async def hottest(self, n: int) -> list[str]:
        return self._hot.top(n)

    async def clear(self) -> None:
        self._entries.clear()
        self._tagged.clear()
        self._bytes = 0

    def _guarded(self, tags: Sequence[str], now: float) -> bool:
        guards = self._guards
        return bool(guards) and any(guards.get(tag, 0.0) > now for tag in tags)

    def _remove(self, key: str) -> _Entry | None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return None
        self._bytes -= entry.size
        for tag in entry.tags:
            keys = self._tagged.get(tag)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._tagged[tag]
        return entry

    def _drop_expired(self) -> None:
        now = self._clock()
        for key in [key for key, entry in self._entries.items() if entry.expires_at <= now]:
            self._remove(key)
