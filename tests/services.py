"""Real backing services for the test suite: reachability checks and per-run namespaces.

A test that needs an absent service is skipped with a message naming the service and
how to start it; with ``KEEL_TEST_REQUIRE_SERVICES=1`` (set by CI) it fails instead.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from typing import NoReturn

import asyncpg
import pytest
from redis.asyncio import Redis

RUN_ID = secrets.token_hex(4)
POSTGRES_ADMIN_DSN = os.environ.get("KEEL_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("KEEL_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REDIS_PREFIX = f"keel:test:{RUN_ID}:"

START_HINTS = {
    "PostgreSQL": "start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    "Redis": "start it with: redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save ''",
}


def service_missing(name: str, address: str, error: BaseException) -> NoReturn:
    message = f"{name} is not reachable at {address} ({type(error).__name__}: {error}); {START_HINTS[name]}"
    if os.environ.get("KEEL_TEST_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{message} [KEEL_TEST_REQUIRE_SERVICES=1]")
    pytest.skip(message)


def postgres_url_for(database: str) -> str:
    base = POSTGRES_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return f"{base}/{database}"


async def _admin(statement: str) -> None:
    connection = await asyncpg.connect(POSTGRES_ADMIN_DSN, timeout=3)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def create_postgres_database(name: str) -> str:
    try:
        asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        service_missing("PostgreSQL", POSTGRES_ADMIN_DSN.rsplit("@", 1)[-1], exc)
    return postgres_url_for(name)


def drop_postgres_database(name: str) -> None:
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _redis_ping() -> None:
    client = Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    try:
        await client.ping()
    finally:
        await client.aclose()


async def _redis_cleanup(prefix: str) -> None:
    client = Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=500)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


def require_redis() -> str:
    try:
        asyncio.run(_redis_ping())
    except (OSError, TimeoutError, ConnectionError) as exc:
        service_missing("Redis", REDIS_URL, exc)
    except Exception as exc:  # redis-py wraps socket errors in its own hierarchy
        service_missing("Redis", REDIS_URL, exc)
    return REDIS_URL


def cleanup_redis(prefix: str = REDIS_PREFIX) -> None:
    asyncio.run(_redis_cleanup(prefix))
