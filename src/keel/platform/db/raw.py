"""Hot reads on PostgreSQL straight through asyncpg, on a connection of the engine's pool.

The statements stay SQLAlchemy Core, built and reviewed like every other query; each is
compiled once for asyncpg (SQL text and parameter order) and then run with
``Connection.fetch``, which keeps its own prepared statements. Per request that skips the
work SQLAlchemy's execution path does on top (session, connection and transaction
objects, cache-key generation, result wrapping): on the product list that was a quarter
of the server's CPU, while a statement this size costs the database well under that.
SQLAlchemy offers no lighter execution path, hence this module.

Only for statements that read: the connection is in autocommit (no transaction is
begun), so each statement sees its own snapshot, as under READ COMMITTED anyway.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from sqlalchemy import Select
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

Statement = Select[*tuple[Any, ...]]

# Compiled statements kept (least recently used dropped first). Callers pass statements
# they build once per shape, so this only bounds what a run of odd shapes can hold.
CACHE_SIZE = 512


@dataclass(frozen=True, slots=True)
class Compiled:
    sql: str
    names: tuple[str, ...]
    # Values the statement carries itself (literals such as ``stock > 0``).
    embedded: Mapping[str, Any]

    def arguments(self, values: Mapping[str, Any]) -> list[Any]:
        """Positional arguments. Values go to asyncpg as they are (no SQLAlchemy bind
        processing): ids, numbers, strings, datetimes, which asyncpg takes natively."""
        embedded = self.embedded
        return [values[name] if name in values else embedded[name] for name in self.names]


def compile_for(statement: Statement, dialect: Dialect) -> Compiled:
    compiled = statement.compile(dialect=dialect)
    embedded = {name: bind.value for name, bind in compiled.binds.items() if not bind.required}
    # numeric_dollar paramstyle: $1, $2… in this order; a name used twice shares its number.
    return Compiled(compiled.string, tuple(compiled.positiontup or ()), embedded)


class RawReader:
    """Runs read-only Core statements on the engine's pool through asyncpg."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._compiled: OrderedDict[Statement, Compiled] = OrderedDict()

    def compiled(self, statement: Statement) -> Compiled:
        found = self._compiled.get(statement)
        if found is None:
            found = self._compiled[statement] = compile_for(statement, self._engine.dialect)
            if len(self._compiled) > CACHE_SIZE:
                self._compiled.popitem(last=False)
        else:
            self._compiled.move_to_end(statement)
        return found

    async def fetch(self, statement: Statement, values: Mapping[str, Any]) -> Sequence[asyncpg.Record]:
        compiled = self.compiled(statement)
        pooled = await self._engine.raw_connection()
        connection: asyncpg.Connection = pooled.driver_connection
        try:
            rows: list[asyncpg.Record] = await connection.fetch(compiled.sql, *compiled.arguments(values))
            return rows
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
            if connection.is_closed():
                # As SQLAlchemy does on a disconnect: this connection is not reused.
                pooled.invalidate(exc)
            # The error the rest of the service handles for any database failure.
            raise DBAPIError(compiled.sql, None, exc) from exc
        except BaseException:
            # Cancelled mid-query (a client that left): the connection's state is not
            # known, so it is closed rather than handed to the next request, as
            # SQLAlchemy does on its own path.
            pooled.invalidate()
            raise
        finally:
            pooled.close()
