"""``POST /cache/warm``: load the most requested entries again."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from keel.platform.caching.base import ResourceCache
from keel.platform.caching.reads import Fill


@dataclass(frozen=True, slots=True)
class WarmReport:
    """The body of ``POST /cache/warm``."""

    status: str  # "completed", or "degraded" when the cache could not store anything
    warmed_entries: int
    duration_ms: float
    timestamp: datetime


# For a key from ``hottest()``: the fresh value, read as that key's viewer (see
# keys.parse_resource_key), or None when the viewer may no longer see the resource or
# it is gone. It must check visibility exactly as the route does.
Loader = Callable[[str], Awaitable[Fill | None]]


async def warm(
    cache: ResourceCache,
    load: Loader,
    *,
    limit: int,
    ttl: float,
    clock: Callable[[], float] = time.perf_counter,
) -> WarmReport:
    """Reload the ``limit`` most requested keys, one at a time (an admin action: it
    should not compete with traffic for database connections).

    A key whose loader returns ``None`` is deleted, never kept: its viewer may have
    lost access. A fill whose key differs from the requested one is refused.
    """
    started = clock()
    warmed = 0
    for key in await cache.hottest(limit):
        fill = await load(key)
        if fill is None or fill.entry.key != key:
            await cache.delete(key)
            continue
        if await cache.set(key, fill.value, ttl=ttl, tags=fill.entry.tags):
            warmed += 1
    return WarmReport(
        status="degraded" if cache.degraded else "completed",
        warmed_entries=warmed,
        duration_ms=round((clock() - started) * 1000, 3),
        timestamp=datetime.now(UTC),
    )
