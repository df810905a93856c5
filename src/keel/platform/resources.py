"""Process-wide resources opened at start-up and closed at shutdown."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from redis.asyncio import Redis

from keel.platform.db.engine import Database
from keel.platform.observability.metrics import HTTPMetrics
from keel.settings import Settings


def create_redis(settings: Settings) -> Redis | None:
    if settings.redis_url is None:
        return None
    timeout = settings.redis_timeout_ms / 1000
    return Redis.from_url(
        settings.redis_url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        health_check_interval=30,
    )


@dataclass(slots=True)
class Resources:
    settings: Settings
    db: Database
    metrics: HTTPMetrics
    redis: Redis | None = None
    started_at: float = field(default_factory=time.monotonic)

    @classmethod
    def open(cls, settings: Settings, metrics: HTTPMetrics) -> Resources:
        return cls(
            settings=settings,
            db=Database.from_settings(settings),
            metrics=metrics,
            redis=create_redis(settings),
        )

    async def close(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()
        await self.db.dispose()


async def _resources(request: Request) -> Resources:
    # async on purpose: FastAPI runs a plain ``def`` dependency in a thread pool.
    resources: Resources = request.app.state.resources
    return resources


ResourcesDep = Annotated[Resources, Depends(_resources)]
