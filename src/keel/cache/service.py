"""The cache as admins see it: statistics, warming the hottest entries, invalidation."""

from __future__ import annotations

import uuid
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Literal

from keel.cache.schemas import CacheStats, InvalidateRequest, InvalidateResult, WarmResult
from keel.folders import service as folders
from keel.platform.caching import CacheStats as CacheFigures
from keel.platform.caching import Fill, parse_resource_key, warm
from keel.platform.caching.views import ViewLoad, fill
from keel.platform.resources import Resources
from keel.platform.security.principal import Principal
from keel.products import service as products
from keel.users import service as users

# Every kind of view the routes cache, and how to read it as a given viewer.
VIEWS: dict[str, ViewLoad] = {"product": products.view, "folder": folders.view}


def _backend(resources: Resources) -> Literal["redis", "memory", "disabled"]:
    if resources.cache is None:
        return "disabled"
    return "redis" if resources.redis is not None else "memory"


async def stats(resources: Resources) -> CacheStats:
    if resources.cache is None:
        figures = CacheFigures.of(hits=0, misses=0, evicted=0, size_bytes=0, max_bytes=0)
    else:
        figures = await resources.cache.stats()
    return CacheStats(backend=_backend(resources), **asdict(figures))


async def _viewer(resources: Resources, user_id: uuid.UUID) -> Principal | None:
    async with resources.db.reader() as session:
        return await users.acting_principal(session, user_id)


async def load_entry(resources: Resources, key: str) -> Fill | None:
    """The fresh view a cache key names, read as its viewer; None when the key is not a
    view's, or the viewer may no longer see it (the entry is then dropped)."""
    parts = parse_resource_key(key)
    if parts is None or parts.variant or parts.kind not in VIEWS:
        return None
    try:
        resource_id, viewer_id = uuid.UUID(parts.resource_id), uuid.UUID(parts.viewer)
    except ValueError:
        return None
    viewer = await _viewer(resources, viewer_id)
    if viewer is None:
        return None
    return await fill(resources, parts.kind, VIEWS[parts.kind], viewer, resource_id)


async def warm_hottest(resources: Resources) -> WarmResult:
    cache = resources.cache
    if cache is None:
        return WarmResult(status="disabled", warmed_entries=0, duration_ms=0.0, timestamp=datetime.now(UTC))
    report = await warm(
        cache,
        lambda key: load_entry(resources, key),
        limit=resources.settings.cache_warm_limit,
        ttl=resources.settings.cache_ttl_seconds,
    )
    return WarmResult(
        status="degraded" if report.status == "degraded" else "completed",
        warmed_entries=report.warmed_entries,
        duration_ms=report.duration_ms,
        timestamp=report.timestamp,
    )


async def invalidate(resources: Resources, request: InvalidateRequest) -> InvalidateResult:
    cache = resources.cache
    if cache is None:
        return InvalidateResult(invalidated=0, total_entries=0)
    dropped = await cache.delete(*request.keys) if request.keys else 0
    if request.pattern is not None:
        dropped += await cache.invalidate_pattern(request.pattern)
    return InvalidateResult(invalidated=dropped, total_entries=await cache.count())
