"""Two real ``keel serve`` processes sharing a broker: an alert event dispatched by one
process's worker reaches a WebSocket connected to the other."""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession
from websockets.asyncio.client import connect

from keel.platform import events
from keel.platform.db.engine import create_engine
from tests import services
from tests.conftest import LIVE_ADMIN_DOMAIN, LiveServer, live_env, make_settings, migrate
from tests.identity import PASSWORD
from tests.realtime.conftest import receive_type

pytestmark = pytest.mark.live

PairFactory = Callable[..., tuple[LiveServer, LiveServer, str]]


@pytest.fixture
def live_pair(postgres_url: str, tmp_path: Path) -> Iterator[PairFactory]:
    """``live_pair(**settings)`` → (A, B, database URL): two servers on one new database,
    A alone running the job worker. Both sign with the same key, as replicas do."""
    databases: list[str] = []
    servers: list[LiveServer] = []

    def start(**settings: object) -> tuple[LiveServer, LiveServer, str]:
        name = f"keel_test_{services.RUN_ID}_rt_{uuid.uuid4().hex[:8]}"
        url = services.create_postgres_database(name)
        databases.append(name)
        migrate(make_settings(database_url=url))
        common = {
            "database_url": url,
            "secret_key": secrets.token_urlsafe(48),
            "worker_poll_ms": 100,
            **settings,
        }
        a = LiveServer(live_env({**common, "worker_in_process": "true"}), tmp_path / "a.log")
        b = LiveServer(live_env({**common, "worker_in_process": "false"}), tmp_path / "b.log")
        servers.extend((a, b))
        for server in (a, b):
            server.wait_ready(timeout=60)
        return a, b, url

    yield start
    for server in servers:
        server.stop()
    for name in databases:
        services.drop_postgres_database(name)


async def admin_token(server: LiveServer) -> str:
    email = f"rt-{secrets.token_hex(4)}@{LIVE_ADMIN_DOMAIN}"
    async with httpx.AsyncClient(base_url=server.url) as http:
        registered = await http.post(
            "/api/v2/auth/register",
            json={"email": email, "password": PASSWORD, "full_name": "Realtime Admin"},
        )
        assert registered.status_code == 201, registered.text
        login = await http.post("/api/v2/auth/login", json={"email": email, "password": PASSWORD})
        assert login.status_code == 200, login.text
        token: str = login.json()["data"]["access_token"]
        return token


async def emit_alert(database_url: str, alert_id: uuid.UUID) -> uuid.UUID:
    """An ``alert.triggered`` event committed from outside the servers: their outbox."""
    engine = create_engine(make_settings(database_url=database_url))
    try:
        async with AsyncSession(engine) as session:
            event_id = await events.emit(
                session,
                "alert.triggered",
                {"id": str(alert_id), "severity": "critical", "message": "disk almost full"},
                subject_type="alert",
                subject_id=alert_id,
            )
            await session.commit()
        return event_id
    finally:
        await engine.dispose()


async def assert_crosses_replicas(b: LiveServer, database_url: str) -> None:
    """A WebSocket on B gets the alert that A's worker dispatched (B runs no worker)."""
    token = await admin_token(b)
    async with httpx.AsyncClient(base_url=b.url) as http:
        response = await http.post("/api/v2/auth/ws-ticket", headers={"Authorization": f"Bearer {token}"})
        ticket = response.json()["data"]["ticket"]
    async with connect(f"ws://127.0.0.1:{b.port}/api/v2/ws/alerts?ticket={ticket}") as ws:
        await ws.send('{"type": "ping"}')
        await receive_type(ws, "pong")  # B has subscribed this socket
        alert_id = uuid.uuid4()
        started = time.monotonic()
        event_id = await emit_alert(database_url, alert_id)
        message = await receive_type(ws, "alert", within=2.0)
        elapsed = time.monotonic() - started
    assert message["data"]["event"] == "alert.triggered"
    assert message["data"]["id"] == str(event_id)
    assert message["data"]["alert"]["id"] == str(alert_id)
    assert elapsed < 2.0


async def test_an_alert_crosses_replicas_through_redis(live_pair: PairFactory, redis_url: str) -> None:
    prefix = f"{services.REDIS_PREFIX}{uuid.uuid4().hex[:8]}:"
    _a, b, url = await asyncio.to_thread(
        live_pair, redis_url=redis_url, redis_key_prefix=prefix, realtime_backend="redis"
    )
    await assert_crosses_replicas(b, url)


async def test_an_alert_crosses_replicas_through_postgres(live_pair: PairFactory) -> None:
    channel = f"keel_rt_{services.RUN_ID}_{uuid.uuid4().hex[:8]}"
    _a, b, url = await asyncio.to_thread(live_pair, realtime_backend="postgres", realtime_pg_channel=channel)
    await assert_crosses_replicas(b, url)
