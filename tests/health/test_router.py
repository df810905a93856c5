"""Liveness and readiness, on both backends and with dependencies down."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from keel.app import create_app
from keel.health.service import QUEUE_STALL_SECONDS
from keel.platform.db.base import utcnow
from keel.platform.db.migrate import head_revision
from keel.platform.queue import control, enqueue
from keel.platform.queue.maintenance import PROBE_TASK
from tests.conftest import Backend, ClientFactory, make_settings, serve_app


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A TCP port that accepts connections into its backlog and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_liveness_is_ok_without_touching_dependencies(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["status"] == "ok"
    assert data["uptime_seconds"] >= 0
    assert "checks" not in data


async def test_readiness_reports_each_dependency(client: httpx.AsyncClient, backend: Backend) -> None:
    response = await client.get("/health/deep")
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["status"] == "ok"
    checks = data["checks"]
    assert checks["database"]["status"] == "ok"
    assert checks["database"]["latency_ms"] > 0
    assert checks["migrations"]["status"] == "ok"
    assert head_revision() in checks["migrations"]["detail"]
    assert checks["queue"]["status"] == "ok"
    assert checks["webhooks"]["status"] == "ok"
    assert "deliveries due" in checks["webhooks"]["detail"]
    assert checks["cache"]["status"] == "ok"
    assert "hit rate" in checks["cache"]["detail"]
    if backend == "postgres":
        assert checks["redis"]["status"] == "ok"
        assert checks["redis"]["latency_ms"] > 0
        assert checks["ratelimit"] == {
            "status": "ok",
            "required": False,
            "latency_ms": None,
            "detail": "redis: limits shared by every process",
        }
        assert checks["cache"]["detail"].startswith("redis: ")
    else:
        assert checks["redis"]["status"] == "disabled"
        assert checks["ratelimit"]["detail"] == "memory: limits are per process"
        assert checks["cache"]["detail"].startswith("memory: ")


async def test_switched_off_cache_and_limiter_are_disabled(client_with: ClientFactory) -> None:
    async with client_with(cache_enabled=False, rate_limit_enabled=False) as client:
        checks = (await client.get("/health/deep")).json()["data"]["checks"]
    assert checks["cache"]["status"] == "disabled"
    assert checks["ratelimit"]["status"] == "disabled"


async def test_detailed_query_is_the_readiness_check(client: httpx.AsyncClient) -> None:
    data = (await client.get("/health", params={"detailed": "true"})).json()["data"]
    assert set(data["checks"]) == {
        "database",
        "migrations",
        "redis",
        "queue",
        "webhooks",
        "ratelimit",
        "cache",
    }


async def test_database_that_never_answers_gives_503_within_a_second(black_hole: int) -> None:
    settings = make_settings(database_url=f"postgresql+asyncpg://postgres@127.0.0.1:{black_hole}/keel")
    async with serve_app(create_app(settings)) as client:
        started = time.perf_counter()
        response = await client.get("/health/deep")
        elapsed = time.perf_counter() - started
    assert response.status_code == 503
    assert elapsed < 1.0
    body = response.json()
    assert body["success"] is False
    assert [item["field"] for item in body["errors"]] == ["database", "migrations"]
    assert body["errors"][0]["code"] == "SERVICE_UNAVAILABLE"
    assert body["meta"]["checks"]["database"]["status"] == "down"
    assert response.headers["retry-after"] == "5"


async def test_refused_database_gives_503_naming_it_without_leaking_the_url() -> None:
    url = f"postgresql+asyncpg://postgres:pw-should-not-leak@127.0.0.1:{closed_port()}/keel"
    async with serve_app(create_app(make_settings(database_url=url))) as client:
        response = await client.get("/health?detailed=true")
    assert response.status_code == 503
    assert "database is unavailable" in response.json()["errors"][0]["message"]
    assert "pw-should-not-leak" not in response.text


async def test_unreachable_redis_is_degraded_not_down(client_with: ClientFactory) -> None:
    async with client_with(redis_url=f"redis://127.0.0.1:{closed_port()}/0") as client:
        before = (await client.get("/health/deep")).json()["data"]["checks"]
        served = await client.get("/api/v2/products")  # the limiter meets the outage
        await client.get("/api/v2/products/00000000-0000-4000-8000-000000000000")  # and the cache
        response = await client.get("/health/deep")
    assert before["ratelimit"]["status"] == "ok"
    assert served.status_code == 401  # answered, limited from memory
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["status"] == "degraded"
    assert data["checks"]["redis"]["status"] == "down"
    assert data["checks"]["redis"]["required"] is False
    assert data["checks"]["ratelimit"]["status"] == "degraded"
    assert "each process limits from memory" in data["checks"]["ratelimit"]["detail"]


async def test_schema_behind_the_code_is_unavailable(tmp_path: Path) -> None:
    settings = make_settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'unmigrated.db'}")
    async with serve_app(create_app(settings)) as client:
        response = await client.get("/health/deep")
    assert response.status_code == 503
    fields = [item["field"] for item in response.json()["errors"]]
    assert fields == ["migrations"]
    assert "keel db upgrade" in response.json()["meta"]["checks"]["migrations"]["detail"]


async def test_a_stalled_queue_is_degraded_and_names_the_backlog(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    resources = app.state.resources
    async with resources.db.writer() as session:
        job_id = await enqueue(
            session, PROBE_TASK, {}, run_at=utcnow() - timedelta(seconds=QUEUE_STALL_SECONDS + 60)
        )
        await session.commit()
    try:
        response = await client.get("/health/deep")
        assert response.status_code == 200  # requests are still served
        data = response.json()["data"]
        assert data["status"] == "degraded"
        queue = data["checks"]["queue"]
        assert queue["status"] == "degraded"
        assert queue["required"] is False
        assert "due" in queue["detail"]
        assert "is a worker running?" in queue["detail"]
    finally:
        async with resources.db.writer() as session:
            await control.cancel(session, job_id)
            await session.commit()
    after = (await client.get("/health/deep")).json()["data"]["checks"]["queue"]
    assert after["status"] == "ok"
