"""Process-wide resources opened at start-up and closed at shutdown."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from pydantic import SecretStr
from redis.asyncio import Redis

from keel.platform.cache import TotalCache, TTLCache
from keel.platform.caching import ResourceCache, create_cache
from keel.platform.db.engine import Database
from keel.platform.observability.metrics import HTTPMetrics
from keel.platform.observability.stats_redis import RedisStatsStore
from keel.platform.observability.stats_store import DatabaseStatsStore, StatsStore
from keel.platform.pubsub import Broker, MemoryBroker, open_broker
from keel.platform.ratelimit import FallbackLimiter, MemoryLimiter, RedisLimiter
from keel.platform.redis_client import connect_redis
from keel.platform.security.crypto import SecretBox
from keel.platform.security.passwords import Passwords
from keel.platform.security.principal import Principal
from keel.platform.security.tokens import AccessTokens, derive_key
from keel.platform.storage import Storage, create_storage
from keel.settings import Settings


def create_redis(settings: Settings) -> Redis | None:
    if settings.redis_url is None:
        return None
    return connect_redis(settings.redis_url, timeout_seconds=settings.redis_timeout_ms / 1000)


AppLimiter = FallbackLimiter | MemoryLimiter


def create_limiter(settings: Settings, metrics: HTTPMetrics, redis: Redis | None) -> AppLimiter:
    """Shared through Redis when there is one (falling back to memory while it is
    unreachable), else this process's memory."""
    if redis is None:
        return MemoryLimiter()
    return FallbackLimiter(
        RedisLimiter(redis, prefix=settings.redis_key_prefix + "rl:"),
        MemoryLimiter(),
        on_fallback=metrics.ratelimit_fallbacks.inc,
        probe_interval=settings.rate_limit_probe_seconds,
    )


def open_cache(settings: Settings, redis: Redis | None) -> ResourceCache | None:
    if not settings.caches_reads:
        return None
    return create_cache(
        redis,
        prefix=settings.redis_key_prefix,
        max_bytes=settings.cache_max_bytes,
        timeout=settings.redis_timeout_ms / 1000,
        fill_guard=settings.cache_fill_guard_seconds,
    )


def create_stats_store(settings: Settings, db: Database, redis: Redis | None) -> StatsStore:
    """Request statistics' minutes in Redis (KEEL_STATS_BACKEND, by default with
    KEEL_REDIS_URL), else in the database; their hours are in the database either way."""
    if settings.effective_stats_backend == "redis" and redis is not None:
        return RedisStatsStore(redis, prefix=settings.redis_key_prefix)
    return DatabaseStatsStore(db)


def open_storage(settings: Settings) -> Storage:
    def secret(value: SecretStr | None) -> str | None:
        return None if value is None else value.get_secret_value()

    return create_storage(
        backend=settings.storage_backend,
        local_dir=settings.storage_dir,
        s3_endpoint_url=settings.s3_endpoint_url,
        s3_bucket=settings.s3_bucket,
        s3_access_key=secret(settings.s3_access_key),
        s3_secret_key=secret(settings.s3_secret_key),
        s3_region=settings.s3_region,
        s3_prefix=settings.s3_prefix,
    )


@dataclass(slots=True)
class Security:
    passwords: Passwords
    access_tokens: AccessTokens
    secret_box: SecretBox
    # sid -> who the session belongs to, or None once it is revoked or expired.
    sessions: TTLCache[uuid.UUID, Principal | None]
    # SHA-256 of an API key -> who it acts for, or None when it is unusable.
    api_keys: TTLCache[str, Principal | None]

    @classmethod
    def from_settings(cls, settings: Settings) -> Security:
        key = settings.signing_key
        cache_seconds = settings.session_cache_ms / 1000
        return cls(
            passwords=Passwords(
                memory_kib=settings.password_hash_memory_kib,
                time_cost=settings.password_hash_time_cost,
                parallelism=settings.password_hash_parallelism,
            ),
            access_tokens=AccessTokens(
                key=derive_key(key, "jwt"),
                issuer=settings.jwt_issuer,
                audience=settings.jwt_audience,
                ttl_seconds=settings.access_token_minutes * 60,
            ),
            secret_box=SecretBox(derive_key(key, "secret-box")),
            sessions=TTLCache(ttl=cache_seconds),
            api_keys=TTLCache(ttl=cache_seconds),
        )


@dataclass(slots=True)
class Resources:
    settings: Settings
    db: Database
    metrics: HTTPMetrics
    security: Security
    # Uploaded documents' bytes, by SHA-256.
    storage: Storage
    # Where request statistics are written and read (summary, alert rules, roll-up).
    stats: StatsStore
    list_totals: TotalCache = field(default_factory=lambda: TotalCache(ttl=0))
    redis: Redis | None = None
    limiter: AppLimiter = field(default_factory=MemoryLimiter)
    # Single product and folder reads, per viewer (None when KEEL_CACHE_ENABLED is off).
    cache: ResourceCache | None = None
    started_at: float = field(default_factory=time.monotonic)
    # Real-time fan-out to every process (its listener runs only in `keel serve`).
    broker: Broker = field(default_factory=MemoryBroker)

    @classmethod
    def open(cls, settings: Settings, metrics: HTTPMetrics) -> Resources:
        redis = create_redis(settings)
        db = Database.from_settings(settings)
        return cls(
            settings=settings,
            db=db,
            metrics=metrics,
            security=Security.from_settings(settings),
            storage=open_storage(settings),
            stats=create_stats_store(settings, db, redis),
            list_totals=TotalCache(ttl=settings.list_total_cache_ms / 1000),
            redis=redis,
            limiter=create_limiter(settings, metrics, redis),
            cache=open_cache(settings, redis),
            broker=open_broker(settings, redis),
        )

    async def close(self) -> None:
        await self.broker.close()
        if self.cache is not None:
            await self.cache.close()
        if self.redis is not None:
            await self.redis.aclose()
        await self.storage.close()
        await self.db.dispose()


async def _resources(request: Request) -> Resources:
    # async on purpose: FastAPI runs a plain ``def`` dependency in a thread pool.
    resources: Resources = request.app.state.resources
    return resources


ResourcesDep = Annotated[Resources, Depends(_resources)]
