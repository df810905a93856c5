"""Breaking a broker's listener connection from outside, as a network failure would."""

from __future__ import annotations

import asyncpg
from redis.asyncio import Redis


def pg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def kill_redis_client(redis: Redis, name: str) -> None:
    """``CLIENT KILL`` the pub/sub connection with this name (not every pub/sub
    connection on the shared server: other runs may use it)."""
    clients = await redis.client_list(_type="pubsub")
    ids = [client["id"] for client in clients if client.get("name") == name]
    assert ids, f"no pub/sub connection named {name}"
    for client_id in ids:
        await redis.client_kill_filter(_id=client_id)


async def terminate_postgres_listener(url: str, name: str) -> None:
    connection = await asyncpg.connect(pg_dsn(url))
    try:
        killed = await connection.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1", name
        )
        assert [row[0] for row in killed] == [True]
    finally:
        await connection.close()
