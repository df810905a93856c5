"""Fixtures shared by the whole suite.

The API suite is parametrised over two backends at module scope:
- ``sqlite``: a temporary SQLite file per test module, in-memory everything else;
- ``postgres``: one database created (and dropped) per run on 127.0.0.1:5432, plus Redis
  with keys namespaced per run.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from keel.app import create_app
from keel.platform.db.engine import create_engine
from keel.platform.db.migrate import upgrade
from keel.platform.queue.worker import drain
from keel.settings import Settings
from tests import services
from tests.identity import Accounts

Backend = str
BACKENDS = ("sqlite", "postgres")


def migrate(settings: Settings) -> None:
    async def _run() -> None:
        engine = create_engine(settings)
        try:
            await upgrade(engine)
        finally:
            await engine.dispose()

    asyncio.run(_run())


# Many tests log in or hammer endpoints: limits out of reach unless a test lowers them,
# and product creation quotas off (0: none); the quota tests set their own.
LIMITS_OUT_OF_REACH: dict[str, object] = {
    "rate_limit_anonymous_per_minute": 1_000_000,
    "rate_limit_user_per_minute": 1_000_000,
    "rate_limit_admin_per_minute": 1_000_000,
    "rate_limit_login_per_minute": 1_000_000,
    "rate_limit_register_per_minute": 1_000_000,
    "quota_products_free": 0,
    "quota_products_pro": 0,
}


def make_settings(**overrides: Any) -> Settings:
    # No in-process worker unless a test asks: background jobs would race the assertions.
    values: dict[str, Any] = {
        "env": "test",
        "log_level": "INFO",
        "_env_file": None,
        "worker_in_process": False,
        # Statistics are flushed by the tests that read them; a background flush would
        # only contend for SQLite's write lock with the tests' own writes.
        "metrics_flush_seconds": 60,
        # One process starts hundreds of apps: freezing at each start would keep whatever
        # the earlier tests left alive out of the collector's reach for good.
        "gc_freeze": False,
        # Production's 250 ms suits a Redis beside the app; on a loaded two-core CI
        # machine opening a connection once took longer. Tests of timeouts set their own.
        "redis_timeout_ms": 2000,
        **LIMITS_OUT_OF_REACH,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture(scope="session", autouse=True)
def file_storage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Uploaded files go under the run's temporary directory, never into the work tree's
    ``.keel/storage`` (servers started by tests inherit the variable)."""
    directory = tmp_path_factory.mktemp("storage")
    previous = os.environ.get("KEEL_STORAGE_DIR")
    os.environ["KEEL_STORAGE_DIR"] = str(directory)
    yield directory
    if previous is None:
        del os.environ["KEEL_STORAGE_DIR"]
    else:
        os.environ["KEEL_STORAGE_DIR"] = previous


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    name = f"keel_test_{services.RUN_ID}"
    url = services.create_postgres_database(name)
    migrate(make_settings(database_url=url))
    yield url
    services.drop_postgres_database(name)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    url = services.require_redis()
    yield url
    services.cleanup_redis()


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Backend:
    return str(request.param)


@pytest.fixture(scope="module")
def backend_settings(
    backend: Backend, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """Settings values selecting the backend; tests add their own on top."""
    if backend == "sqlite":
        path = tmp_path_factory.mktemp("sqlite") / "keel.db"
        values: dict[str, Any] = {"database_url": f"sqlite+aiosqlite:///{path}"}
        migrate(make_settings(**values))
        return values
    return {
        "database_url": request.getfixturevalue("postgres_url"),
        "redis_url": request.getfixturevalue("redis_url"),
        "redis_key_prefix": services.REDIS_PREFIX,
    }


@pytest.fixture(scope="module")
def settings(backend_settings: dict[str, Any]) -> Settings:
    return make_settings(**backend_settings)


@asynccontextmanager
async def serve_app(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        LifespanManager(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client,
    ):
        yield client


@pytest.fixture(scope="module")
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with LifespanManager(application):
        yield application
        # Run the jobs the module's writes queued (event dispatches, …): on PostgreSQL
        # the database is shared by the whole run, and a due job left behind would
        # show as a stalled queue in later modules' health checks.
        await drain(application.state.resources)


@pytest.fixture(scope="module")
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as c:
        yield c


@pytest.fixture(scope="module")
def accounts(app: FastAPI, client: httpx.AsyncClient) -> Accounts:
    return Accounts(app, client)


ClientFactory = Callable[..., Any]


@pytest.fixture
def client_with(backend_settings: dict[str, Any]) -> ClientFactory:
    """``async with client_with(hsts=True) as client:`` — an app with extra settings."""

    def factory(**overrides: Any) -> Any:
        return serve_app(create_app(make_settings(**{**backend_settings, **overrides})))

    return factory


# --- Live server -----------------------------------------------------------------


# Accounts registered on the live server with this domain are admins.
LIVE_ADMIN_DOMAIN = "admin.example"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class LiveServer:
    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        # The server's KEEL_* settings (its database among them), for commands run beside it.
        self.env = env
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "keel", "serve", "--port", str(self.port)],
            env={**os.environ, **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log_path.read_text()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"server not ready after {timeout}s:\n{self.log_path.read_text()}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()

    def log_lines(self) -> list[str]:
        return self.log_path.read_text().splitlines()


# How every live server runs unless told otherwise: JSON logs, migrated by the test
# run, its limits and quotas out of reach.
LIVE_DEFAULTS: dict[str, object] = {
    "env": "test",
    "log_format": "json",
    "log_level": "INFO",
    "auto_migrate": "false",
    "admin_email_domains": LIVE_ADMIN_DOMAIN,
    **LIMITS_OUT_OF_REACH,
}


def live_env(settings: Mapping[str, object]) -> dict[str, str]:
    """The ``KEEL_*`` environment of a live server: :data:`LIVE_DEFAULTS` and then these."""
    return {f"KEEL_{key.upper()}": str(value) for key, value in {**LIVE_DEFAULTS, **settings}.items()}


@contextmanager
def running_live_server(
    backend_settings: Mapping[str, object], log_dir: Path, **settings: object
) -> Iterator[LiveServer]:
    """A real uvicorn process on a free port, on the backend, logging JSON, with these
    settings on top of :data:`LIVE_DEFAULTS`.

    On PostgreSQL it gets a database of its own: what it is sent (a fuzzer's thousands
    of writes, the jobs they queue) stays out of the run's shared database, where later
    modules would list it and drain its queue.
    """
    values = {**backend_settings, **settings}
    own_database = None
    if str(values.get("database_url", "")).startswith("postgresql"):
        own_database = f"keel_test_{services.RUN_ID}_live_{uuid.uuid4().hex[:8]}"
        values["database_url"] = services.create_postgres_database(own_database)
        migrate(make_settings(database_url=values["database_url"]))
    server = LiveServer(live_env(values), log_dir / "server.log")
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()
        if own_database is not None:
            services.drop_postgres_database(own_database)


@pytest.fixture(scope="module")
def live_server(
    backend_settings: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """:func:`running_live_server` for the module, with the default settings."""
    with running_live_server(backend_settings, tmp_path_factory.mktemp("live")) as server:
        yield server
