"""A small in-process cache with a time-to-live and a size bound."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

_MISSING = object()


class TTLCache(Generic[K, V]):
    """Entries live ``ttl`` seconds; past ``max_entries`` the oldest go first.

    Used on the event loop thread only, so it needs no lock.
    """

    def __init__(self, *, ttl: float, max_entries: int = 100_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._loading: dict[K, asyncio.Future[V]] = {}

    async def get_or_load(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        """The cached value, or ``load()``'s — run once however many callers miss at once.

        When a hot entry expires, every concurrent request misses together; they share
        one load instead of each querying the database.
        """
        entry = self._entries.get(key)
        if entry is not None and entry[0] >= time.monotonic():
            return entry[1]
        pending = self._loading.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        try:
            value = await load()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody else needs to
            raise
        else:
            future.set_result(value)
            self.put(key, value)
            return value
        finally:
            del self._loading[key]

    def get(self, key: K) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, value = entry
        if expires < time.monotonic():
            del self._entries[key]
            return None
        return value

    def put(self, key: K, value: V) -> None:
        if self.ttl <= 0:
            return
        self._entries[key] = (time.monotonic() + self.ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def evict(self, key: K) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


class TotalCache:
    """Counted list totals, reused for ``ttl`` seconds per (caller, list, filters).

    Counting every visible row on every page request costs more than the page itself
    once a caller has thousands of rows. Any write this process commits drops every
    entry at once (a generation bump: O(1), no scan), so a client never sees its own
    change missing from a total; writes through other processes show within ``ttl``.
    """

    def __init__(self, *, ttl: float, max_entries: int = 10_000) -> None:
        self._entries: TTLCache[Hashable, tuple[int, int]] = TTLCache(ttl=ttl, max_entries=max_entries)
        self._generation = 0
        self._counting: dict[Hashable, asyncio.Future[int | None]] = {}

    def get(self, key: Hashable) -> int | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] != self._generation:
            return None
        return entry[1]

    def put(self, key: Hashable, total: int) -> None:
        self._entries.put(key, (self._generation, total))

    def lead(self, key: Hashable) -> asyncio.Future[int | None] | None:
        """Who counts a missing total. None: the caller does, and then calls
        :meth:`finish` whatever happens. Otherwise the count another request is making
        (None if it failed): when an entry expires under load, the requests that miss
        together share one count instead of each running it."""
        counting = self._counting.get(key)
        if counting is not None:
            return counting
        self._counting[key] = asyncio.get_running_loop().create_future()
        return None

    def finish(self, key: Hashable, total: int | None) -> None:
        """The end of the count :meth:`lead` gave the caller; None if it failed."""
        if total is not None:
            self.put(key, total)
        counting = self._counting.pop(key, None)
        if counting is not None and not counting.done():
            counting.set_result(total)

    def invalidate(self) -> None:
        self._generation += 1
