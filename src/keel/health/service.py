"""Liveness and readiness checks.

Every check is bounded by ``KEEL_HEALTH_TIMEOUT_MS`` so an unreachable dependency
answers "down" quickly instead of hanging the probe.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from keel import __version__
from keel.health.schemas import DependencyCheck, Liveness, OverallStatus, Readiness
from keel.platform.db.base import utcnow
from keel.platform.db.migrate import current_revision, head_revision
from keel.platform.queue import Job, Status
from keel.platform.ratelimit import FallbackLimiter
from keel.platform.resources import Resources
from keel.webhooks import service as webhooks_service

# Due jobs waiting longer than this mean no worker is keeping up (or none runs).
QUEUE_STALL_SECONDS = 300.0


def liveness(resources: Resources) -> Liveness:
    return Liveness(
        status="ok",
        version=__version__,
        uptime_seconds=round(time.monotonic() - resources.started_at, 3),
    )


async def _timed(
    probe: Callable[[], Awaitable[str | None]], *, within: float, required: bool
) -> DependencyCheck:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(within):
            detail = await probe()
    except TimeoutError:
        return DependencyCheck(
            status="down", required=required, detail=f"no answer within {within * 1000:.0f} ms"
        )
    except Exception as exc:  # any failure of a dependency is a "down", never a 500
        return DependencyCheck(status="down", required=required, detail=_describe(exc))
    latency = round((time.perf_counter() - started) * 1000, 3)
    return DependencyCheck(status="ok", required=required, latency_ms=latency, detail=detail)


def _describe(exc: BaseException) -> str:
    # The exception class is enough to diagnose; messages can carry DSNs or hostnames.
    return f"{type(exc).__module__}.{type(exc).__name__}"


async def readiness(resources: Resources) -> Readiness:
    timeout = resources.settings.health_timeout_ms / 1000
    revision: list[str | None] = []

    async def database() -> str | None:
        async with resources.db.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
            revision.append(await current_revision(connection))
        return None

    async def redis() -> str | None:
        if resources.redis is not None:
            await resources.redis.ping()
        return None

    stalled: dict[str, bool] = {}

    async def queue() -> str | None:
        now = utcnow()
        async with resources.db.reader() as session:
            backlog, oldest = await _due(session, now)
            dead = select(func.count()).select_from(Job).where(Job.status == Status.DEAD.value)
            dead_count = (await session.execute(dead)).scalar_one()
        waited = (now - oldest).total_seconds() if oldest is not None else 0.0
        stalled["queue"] = waited > QUEUE_STALL_SECONDS
        return f"{backlog} due, oldest waiting {waited:.1f} s; {dead_count} dead"

    async def webhooks() -> str | None:
        now = utcnow()
        async with resources.db.reader() as session:
            backlog, oldest = await _due(session, now, kind=webhooks_service.DELIVER_TASK)
        waited = (now - oldest).total_seconds() if oldest is not None else 0.0
        stalled["webhooks"] = waited > QUEUE_STALL_SECONDS
        return f"{backlog} deliveries due, oldest waiting {waited:.1f} s"

    async def cache() -> str | None:
        if resources.cache is None:
            return None
        stats = await resources.cache.stats()
        where = "redis" if resources.redis is not None else "memory"
        return (
            f"{where}: hit rate {stats.hit_rate:.2%} over {stats.total_requests} reads, "
            f"{stats.current_size_bytes} of {stats.max_size_bytes} bytes"
        )

    checks: dict[str, DependencyCheck] = {}
    database_check, redis_check, queue_check, webhooks_check, cache_check = await asyncio.gather(
        _timed(database, within=timeout, required=True),
        _timed(redis, within=timeout, required=False) if resources.redis is not None else _disabled(),
        _timed(queue, within=timeout, required=False),
        _timed(webhooks, within=timeout, required=False),
        _timed(cache, within=timeout, required=False)
        if resources.cache is not None
        else _off("KEEL_CACHE_ENABLED"),
    )
    checks["database"] = database_check
    checks["migrations"] = _migrations_check(database_check, revision[0] if revision else None)
    checks["redis"] = redis_check
    # Requests are still served when work waits; background work (webhooks, exports) is late.
    checks["queue"] = _stalled(queue_check) if stalled.get("queue") else queue_check
    checks["webhooks"] = _stalled(webhooks_check) if stalled.get("webhooks") else webhooks_check
    checks["ratelimit"] = _ratelimit_check(resources)
    if resources.cache is not None and resources.cache.degraded:
        # Reads are served from the database meanwhile; invalidations are replayed on recovery.
        cache_check = DependencyCheck(
            status="degraded", required=False, detail="Redis unreachable: every read misses"
        )
    checks["cache"] = cache_check
    return Readiness(
        status=_overall(checks),
        version=__version__,
        uptime_seconds=round(time.monotonic() - resources.started_at, 3),
        checks=checks,
    )


async def _due(
    session: AsyncSession, now: datetime, *, kind: str | None = None
) -> tuple[int, datetime | None]:
    """How many jobs (of ``kind``) are due, and since when the oldest is."""
    due = select(func.count(), func.min(Job.run_at)).where(
        Job.status == Status.QUEUED.value, Job.run_at <= now
    )
    if kind is not None:
        due = due.where(Job.kind == kind)
    count, oldest = (await session.execute(due)).one()
    return count, oldest


def _stalled(check: DependencyCheck) -> DependencyCheck:
    return check.model_copy(update={"status": "degraded", "detail": f"{check.detail}: is a worker running?"})


async def _disabled() -> DependencyCheck:
    return await _off("KEEL_REDIS_URL")


async def _off(setting: str) -> DependencyCheck:
    return DependencyCheck(status="disabled", required=False, detail=f"{setting} is not set")


def _ratelimit_check(resources: Resources) -> DependencyCheck:
    if not resources.settings.rate_limit_enabled:
        return DependencyCheck(status="disabled", required=False, detail="KEEL_RATE_LIMIT_ENABLED is off")
    limiter = resources.limiter
    if not isinstance(limiter, FallbackLimiter):
        return DependencyCheck(status="ok", required=False, detail="memory: limits are per process")
    if limiter.degraded:
        return DependencyCheck(
            status="degraded",
            required=False,
            detail="Redis unreachable: each process limits from memory; login, token and register answer 503",
        )
    return DependencyCheck(status="ok", required=False, detail="redis: limits shared by every process")


def _migrations_check(database: DependencyCheck, current: str | None) -> DependencyCheck:
    if database.status != "ok":
        return DependencyCheck(status="down", required=True, detail="database unreachable")
    head = head_revision()
    if current == head:
        return DependencyCheck(status="ok", required=True, detail=f"at head {head}")
    return DependencyCheck(
        status="down",
        required=True,
        detail=f"schema at {current or 'nothing'}, code expects {head}: run `keel db upgrade`",
    )


def _overall(checks: dict[str, DependencyCheck]) -> OverallStatus:
    if any(check.required and check.status == "down" for check in checks.values()):
        return "unavailable"
    if any(check.status in ("down", "degraded") for check in checks.values()):
        return "degraded"
    return "ok"
