"""Limiters under test: the in-memory one on a fake clock and the Redis one on the real
server (keys under the run's prefix), private redis-server processes to kill, and live
``keel serve`` processes pointed at them."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.asyncio import Redis

from keel.platform.ratelimit import Limiter, MemoryLimiter, RedisLimiter
from keel.platform.redis_client import connect_redis
from tests import services
from tests.conftest import LiveServer, live_env

PREFIX = f"{services.REDIS_PREFIX}rl:"


class FakeClock:
    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Store:
    name: str
    limiter: Limiter
    # Lets time pass: the fake clock jumps; against Redis (whose clock the script reads) we sleep.
    wait: Callable[[float], Awaitable[None]]
    # How early a request may come and still be refused, given the store's clock resolution.
    early: float


@pytest.fixture
def key() -> str:
    return uuid.uuid4().hex


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[Redis]:
    client = connect_redis(redis_url, timeout_seconds=2)
    yield client
    await client.aclose()


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> Store:
    if request.param == "memory":
        clock = FakeClock()

        async def jump(seconds: float) -> None:
            clock.advance(seconds)

        return Store("memory", MemoryLimiter(clock=clock), jump, early=0.000_001)
    client: Redis = request.getfixturevalue("redis_client")
    # 150 ms: far more than a loopback round trip, so "too early" stays too early.
    return Store("redis", RedisLimiter(client, prefix=PREFIX), asyncio.sleep, early=0.15)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """A redis-server of our own, to stop, restart and SCRIPT FLUSH without touching the
    shared one."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._directory = directory
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self._directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 5
        while True:
            try:
                # Ours, not whatever took the port meanwhile (a restart reuses the port).
                pid = redis.Redis(port=self.port, socket_connect_timeout=0.2).info("server")["process_id"]
            except redis.ConnectionError:
                pid = None
            if pid == self._process.pid:
                return
            if time.monotonic() > deadline or self._process.poll() is not None:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.02)

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=5)
            self._process = None


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        message = "redis-server is not installed (apt-get install redis-server); it runs a private Redis"
        if os.environ.get("KEEL_TEST_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{message} [KEEL_TEST_REQUIRE_SERVICES=1]")
        pytest.skip(message)
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


LiveFactory = Callable[..., list[LiveServer]]


@pytest.fixture
def start_live(backend_settings: dict[str, Any], tmp_path: Path) -> Iterator[LiveFactory]:
    """``start_live(replicas=2, redis_url=..., rate_limit_anonymous_per_minute=10)``: ready
    ``keel serve`` processes on the module's backend, configured like ``live_server`` (JSON
    logs, limits out of reach) plus these settings. Replicas start side by side (an import
    of the app takes seconds); every one started is stopped afterwards."""
    servers: list[LiveServer] = []

    def start(*, replicas: int = 1, **overrides: object) -> list[LiveServer]:
        env = live_env({**backend_settings, **overrides})
        started = []
        for _ in range(replicas):
            server = LiveServer(env, tmp_path / f"server-{len(servers)}.log")
            servers.append(server)
            started.append(server)
        for server in started:
            # Generous: an app import takes seconds, many more on a busy machine.
            server.wait_ready(timeout=60)
        return started

    yield start
    for server in servers:
        server.stop()
