"""Database.fetch: read-only statements by the cheapest path the backend has (asyncpg
straight on a pooled connection on PostgreSQL, a Core connection on SQLite)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import Integer, bindparam, column, func, literal, select, table
from sqlalchemy.exc import DBAPIError

from keel.platform.db.engine import Database
from tests.conftest import make_settings


async def test_named_values_and_the_statement_s_own_literals_are_bound(db: Database) -> None:
    statement = select(
        bindparam("a", type_=Integer()) + 1, literal(5, Integer()), bindparam("a", type_=Integer())
    )
    assert [tuple(row) for row in await db.fetch(statement, {"a": 41})] == [(42, 5, 41)]
    # Compiled once, run again with other values.
    assert [tuple(row) for row in await db.fetch(statement, {"a": 1})] == [(2, 5, 1)]


async def test_a_value_left_out_is_an_error_not_a_guess(db: Database) -> None:
    with pytest.raises(Exception, match="a"):
        await db.fetch(select(bindparam("a", type_=Integer())), {})


async def test_a_database_error_is_sqlalchemy_s_and_the_pool_serves_on(db: Database) -> None:
    with pytest.raises(DBAPIError):
        await db.fetch(select(column("x")).select_from(table("no_such_table")), {})
    assert [tuple(row) for row in await db.fetch(select(literal(1, Integer())), {})] == [(1,)]


@pytest.fixture
async def postgres(postgres_url: str) -> AsyncIterator[Database]:
    database = Database.from_settings(make_settings(database_url=postgres_url, db_pool_size=1))
    yield database
    await database.dispose()


async def test_a_query_cancelled_midway_does_not_hand_its_connection_on(postgres: Database) -> None:
    before = await postgres.fetch(select(func.pg_backend_pid()), {})
    sleeping = asyncio.ensure_future(postgres.fetch(select(func.pg_sleep(5)), {}))
    await asyncio.sleep(0.3)
    sleeping.cancel()
    with pytest.raises(asyncio.CancelledError):
        await sleeping
    # The only pooled connection was closed, not reused mid-query: the next read runs on
    # a new one, at once.
    after = await asyncio.wait_for(postgres.fetch(select(func.pg_backend_pid()), {}), timeout=3)
    assert after[0][0] != before[0][0]
    assert isinstance(after[0], asyncpg.Record)
