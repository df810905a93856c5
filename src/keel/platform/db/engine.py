"""Engine and session factory for the two run modes (SQLite embedded, PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from keel.platform.db.raw import RawReader, Statement
from keel.settings import Settings

# Execution option read by the SQLite "begin" hook: "" (deferred) or "IMMEDIATE".
SQLITE_BEGIN_OPTION = "keel_sqlite_begin"


def create_engine(settings: Settings) -> AsyncEngine:
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(settings)
    return create_async_engine(
        url,
        json_deserializer=orjson.loads,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout,
        # No pre-ping: it costs a round trip on every checkout. Broken connections are
        # detected on use and the pool is invalidated; recycling bounds their age.
        pool_recycle=1800,
        connect_args=_asyncpg_connect_args(settings),
    )


def _asyncpg_connect_args(settings: Settings) -> dict[str, Any]:
    server_settings = {"application_name": "keel"}
    if settings.db_statement_timeout_ms:
        server_settings["statement_timeout"] = str(settings.db_statement_timeout_ms)
    return {"timeout": settings.db_connect_timeout, "server_settings": server_settings}


def _sqlite_engine(settings: Settings) -> AsyncEngine:
    engine = create_async_engine(
        settings.database_url,
        json_deserializer=orjson.loads,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout,
        connect_args={"timeout": settings.db_pool_timeout},
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin: the
        # module's implicit BEGIN skips SELECTs and breaks SAVEPOINT (SQLAlchemy docs,
        # "Serializable isolation / Savepoints / Transactional DDL").
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={int(settings.db_pool_timeout * 1000)}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        options = connection.get_execution_options()
        if options.get("isolation_level") == "AUTOCOMMIT":
            return
        mode = options.get(SQLITE_BEGIN_OPTION, "")
        connection.exec_driver_sql("BEGIN IMMEDIATE" if mode == "IMMEDIATE" else "BEGIN")

    return engine


@dataclass(slots=True)
class Database:
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    # Sessions of reader(): on PostgreSQL bound to the engine in AUTOCOMMIT.
    read_sessionmaker: async_sessionmaker[AsyncSession]
    # fetch() on PostgreSQL; None on SQLite.
    raw: RawReader | None = None

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        engine = create_engine(settings)
        sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
        if engine.dialect.name == "sqlite":
            return cls(engine, sessionmaker, sessionmaker)
        autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        return cls(
            engine, sessionmaker, async_sessionmaker(autocommit, expire_on_commit=False), RawReader(engine)
        )

    async def fetch(self, statement: Statement, values: Mapping[str, Any]) -> Sequence[Sequence[Any]]:
        """The rows of a statement that only reads, as tuples in its column order, by
        the cheapest path the backend has: asyncpg directly on PostgreSQL (see
        :mod:`keel.platform.db.raw`), a Core connection on SQLite. Outside any request
        transaction, so it does not see that transaction's uncommitted writes."""
        if self.raw is not None:
            return await self.raw.fetch(statement, values)
        async with self.engine.connect() as connection:
            return (await connection.execute(statement, values)).all()

    @asynccontextmanager
    async def reader(self) -> AsyncIterator[AsyncSession]:
        """A session that only reads. On PostgreSQL each statement runs on its own
        (AUTOCOMMIT), which saves the BEGIN and ROLLBACK round trips; under READ
        COMMITTED every statement had its own snapshot anyway. The connection is taken
        at the first statement, not before: a request holds one only from its first
        query. (Not on SQLite: leaving AUTOCOMMIT, pysqlite hands the connection back to
        the sqlite3 module's implicit transactions, which the engine turns off on
        purpose.)"""
        async with self.read_sessionmaker() as session:
            yield session

    @asynccontextmanager
    async def writer(self) -> AsyncIterator[AsyncSession]:
        """A session for a transaction that writes; the caller commits."""
        async with self.sessionmaker() as session:
            if self.is_sqlite:
                # Read-then-write transactions on SQLite must hold the write lock from
                # the start, or a concurrent writer makes them fail with SQLITE_BUSY.
                await session.connection(execution_options={SQLITE_BEGIN_OPTION: "IMMEDIATE"})
            yield session

    async def dispose(self) -> None:
        await self.engine.dispose()
