"""What every resource cache offers, and the statistics it reports."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CacheStats:
    """The figures ``GET /cache/stats`` reports.

    ``hit_rate`` is ``cache_hits / total_requests`` rounded to 4 places (0.0 before the
    first request). Sizes count logical bytes: UTF-8 key plus value.
    """

    hit_rate: float
    total_requests: int
    cache_hits: int
    cache_misses: int
    evicted_entries: int
    current_size_bytes: int
    max_size_bytes: int

    @classmethod
    def of(cls, *, hits: int, misses: int, evicted: int, size_bytes: int, max_bytes: int) -> CacheStats:
        total = hits + misses
        return cls(
            hit_rate=round(hits / total, 4) if total else 0.0,
            total_requests=total,
            cache_hits=hits,
            cache_misses=misses,
            evicted_entries=evicted,
            current_size_bytes=size_bytes,
            max_size_bytes=max_bytes,
        )


def entry_size(key: str, value: bytes) -> int:
    """What an entry costs against the byte budget (the same on both backends)."""
    return len(key.encode()) + len(value)


class ResourceCache(ABC):
    """Bytes under string keys, with a time to live, tags and a byte budget.

    Keys are cache keys (see :mod:`keel.platform.caching.keys`), never backend keys: a
    backend adds its own namespace. Nothing here raises because the backend is down —
    a lookup is then a miss and a write is dropped (see :attr:`degraded`).

    ``fill_guard`` closes the race between a read and a concurrent write: for that many
    seconds after a tag is invalidated, :meth:`set` refuses entries carrying the tag, so
    a read that saw the database before the write committed cannot plant the old state
    after the write's invalidation. :func:`keel.platform.caching.reads.read_through`
    also refuses to store a load that took longer than half the guard, which makes the
    protection complete whatever the load's duration.
    """

    max_bytes: int
    fill_guard: float

    @property
    def degraded(self) -> bool:
        """True while the backend is unreachable (every lookup is a miss)."""
        return False

    @abstractmethod
    async def get(self, key: str) -> bytes | None:
        """The value, or ``None`` on a miss (absent, expired or backend down)."""

    @abstractmethod
    async def set(self, key: str, value: bytes, *, ttl: float, tags: Sequence[str] = ()) -> bool:
        """Store ``value`` for ``ttl`` seconds; whether it was stored.

        Not stored when ``ttl <= 0``, when the entry alone exceeds the byte budget, when
        one of ``tags`` was invalidated less than ``fill_guard`` seconds ago, or when
        the backend is down. Storing evicts other entries until the budget holds.
        """

    @abstractmethod
    async def delete(self, *keys: str) -> int:
        """Drop these keys; how many live entries were dropped."""

    @abstractmethod
    async def invalidate_tags(self, *tags: str) -> int:
        """Drop every entry stored with one of ``tags``; how many were dropped."""

    @abstractmethod
    async def invalidate_pattern(self, pattern: str) -> int:
        """Drop every key matching the glob ``pattern`` (``*``, ``?``, ``[...]``); how many."""

    @abstractmethod
    async def stats(self) -> CacheStats: ...

    @abstractmethod
    async def count(self) -> int:
        """How many live entries the cache holds (``total_entries`` in the admin API)."""

    @abstractmethod
    async def hottest(self, n: int) -> list[str]:
        """The ``n`` most requested keys, most requested first (cached or not)."""

    @abstractmethod
    async def clear(self) -> None:
        """Drop every entry. Statistics and request counts are kept."""

    async def close(self) -> None:  # noqa: B027 — optional hook, nothing to release by default
        """Release what the cache holds (not a client it was given)."""
