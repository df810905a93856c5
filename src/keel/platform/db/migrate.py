"""Alembic, driven from code: ``keel db upgrade``, start-up upgrades and the health check."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

# Arbitrary constant shared by every replica: concurrent `keel db upgrade` runs queue
# on this PostgreSQL advisory lock instead of racing each other's DDL.
MIGRATION_LOCK_KEY = 0x6B65656C  # "keel"


# Full-text objects the migrations create outside the ORM metadata (FTS5 tables and
# their shadow tables on SQLite, GIN expression indexes on PostgreSQL).
SEARCH_OBJECT_PREFIXES = (
    "document_chunks_fts",
    "ix_document_chunks_search",
    "products_fts",
    "product_search_keys",
    "ix_products_search",
    # PostgreSQL's stored tsvector columns (migration 0010).
    "search_vector",
)


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """Autogenerate's filter: never propose dropping the full-text objects."""
    return not (
        reflected and compare_to is None and name is not None and name.startswith(SEARCH_OBJECT_PREFIXES)
    )


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", "keel:migrations")
    return config


@lru_cache(maxsize=1)
def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    async with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        await connection.run_sync(_upgrade, revision)
        await connection.commit()


def _upgrade(connection: Connection, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


async def current_revision(connection: AsyncConnection) -> str | None:
    def _current(sync_connection: Connection) -> str | None:
        return MigrationContext.configure(sync_connection).get_current_revision()

    return await connection.run_sync(_current)
