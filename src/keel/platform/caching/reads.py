"""Read-through for a single resource: the cached bytes, or load, render and store."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from keel.platform.caching.base import ResourceCache
from keel.platform.caching.keys import CacheEntry


async def read_through(
    cache: ResourceCache,
    entry: CacheEntry,
    load: Callable[[], Awaitable[bytes | None]],
    *,
    ttl: float,
    clock: Callable[[], float] = time.monotonic,
) -> bytes | None:
    """``entry``'s cached value, or ``load()``'s, stored for next time.

    ``load`` does the whole read as the entry's viewer — visibility check included —
    and returns the rendered bytes, or ``None`` (or raises) when there is nothing to
    show; neither is cached.

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
    value = await load()
    if value is not None and clock() - started < cache.fill_guard / 2:
        await cache.set(entry.key, value, ttl=ttl, tags=entry.tags)
    return value
