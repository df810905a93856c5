"""Read-through for a single resource: the cached bytes, or load, render and store."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from keel.platform.caching.base import ResourceCache
from keel.platform.caching.keys import CacheEntry


@dataclass(frozen=True, slots=True)
class Fill:
    """What a loader produced for a key: the bytes and the entry's key and tags."""

    entry: CacheEntry
    value: bytes


async def read_through(
    cache: ResourceCache,
    entry: CacheEntry,
    load: Callable[[], Awaitable[bytes | Fill | None]],
    *,
    ttl: float,
    clock: Callable[[], float] = time.monotonic,
) -> bytes | None:
    """``entry``'s cached value, or ``load()``'s, stored for next time.

    ``load`` does the whole read as the entry's viewer — visibility check included —
    and returns the rendered bytes, or ``None`` (or raises) when there is nothing to
    show; neither is cached. A load that learns what invalidates the entry only by
    reading (whether a product sits in a folder) returns a :class:`Fill` whose entry
    has the same key and the tags it needs; a different key is not stored.

    A load that took half the cache's ``fill_guard`` or longer is returned but not
    stored: it may have read the database before a write whose invalidation has since
    expired its guard. Every load that is stored therefore either finished within the
    guard of any invalidation that followed its read, and is refused by it, or read
    after that write. (``load`` must not reuse a database snapshot older than this
    call: on PostgreSQL each statement of a READ COMMITTED transaction takes its own;
    on SQLite, call this before the request's first query.)
    """
    cached = await cache.get(entry.key)
    if cached is not None:
        return cached
    started = clock()
    loaded = await load()
    if loaded is None:
        return None
    value, tags = (loaded.value, loaded.entry.tags) if isinstance(loaded, Fill) else (loaded, entry.tags)
    fresh = clock() - started < cache.fill_guard / 2
    if fresh and (not isinstance(loaded, Fill) or loaded.entry.key == entry.key):
        await cache.set(entry.key, value, ttl=ttl, tags=tags)
    return value
