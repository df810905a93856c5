"""Engine configuration, identifiers, timestamps and migrations on both backends."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import String, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from keel.platform.db.base import NAMING_CONVENTION, IdMixin, TimestampMixin, UTCDateTime
from keel.platform.db.engine import create_engine
from keel.platform.db.ids import new_id
from keel.platform.db.migrate import current_revision, head_revision, include_object, upgrade
from keel.settings import Settings
from tests import services
from tests.conftest import make_settings


class _ProbeBase(DeclarativeBase):
    from sqlalchemy import MetaData

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime()}  # noqa: RUF012


class Widget(IdMixin, TimestampMixin, _ProbeBase):
    __tablename__ = f"probe_widgets_{services.RUN_ID}"
    name: Mapped[str] = mapped_column(String(50))


def test_new_ids_are_uuid7_and_time_ordered() -> None:
    ids = [new_id() for _ in range(1000)]
    assert all(value.version == 7 for value in ids)
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        UTCDateTime().process_bind_param(datetime(2026, 1, 1), None)  # type: ignore[arg-type]


async def test_models_get_uuid7_ids_and_aware_utc_timestamps(settings: Settings) -> None:
    engine = create_engine(settings)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_ProbeBase.metadata.create_all)
        from sqlalchemy.ext.asyncio import async_sessionmaker

        sessions = async_sessionmaker(engine, expire_on_commit=False)
        async with sessions.begin() as session:
            widget = Widget(name="w")
            session.add(widget)
        async with sessions() as session:
            loaded = (await session.execute(select(Widget))).scalar_one()
        assert isinstance(loaded.id, uuid.UUID)
        assert loaded.id.version == 7
        assert loaded.created_at.tzinfo is not None
        assert loaded.created_at.utcoffset() == timedelta(0)
        assert abs(loaded.created_at - datetime.now(UTC)) < timedelta(minutes=1)

        async with sessions.begin() as session:
            other_zone = datetime(2026, 5, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
            loaded = await session.get_one(Widget, loaded.id)
            loaded.created_at = other_zone
        async with sessions() as session:
            again = await session.get_one(Widget, loaded.id)
        assert again.created_at == other_zone
        assert again.created_at.tzinfo == UTC
    finally:
        async with engine.begin() as connection:
            await connection.run_sync(_ProbeBase.metadata.drop_all)
        await engine.dispose()


async def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path: object) -> None:
    settings = make_settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/pragmas.db")
    engine = create_engine(settings)
    try:
        async with engine.connect() as connection:
            assert (await connection.execute(text("PRAGMA journal_mode"))).scalar_one() == "wal"
            assert (await connection.execute(text("PRAGMA foreign_keys"))).scalar_one() == 1
    finally:
        await engine.dispose()


async def test_upgrade_is_idempotent(settings: Settings) -> None:
    engine = create_engine(settings)
    try:
        await upgrade(engine)
        await upgrade(engine)
        async with engine.connect() as connection:
            assert await current_revision(connection) == head_revision()
    finally:
        await engine.dispose()


@pytest.fixture
def fresh_postgres_url() -> Iterator[str]:
    name = f"keel_test_{services.RUN_ID}_race"
    yield services.create_postgres_database(name)
    services.drop_postgres_database(name)


async def test_concurrent_upgrades_on_postgres_are_serialised(fresh_postgres_url: str) -> None:
    engines = [create_engine(make_settings(database_url=fresh_postgres_url)) for _ in range(6)]
    try:
        await asyncio.gather(*(upgrade(engine) for engine in engines))
        async with engines[0].connect() as connection:
            assert await current_revision(connection) == head_revision()
            versions = (await connection.execute(text("SELECT COUNT(*) FROM alembic_version"))).scalar_one()
        assert versions == 1
    finally:
        for engine in engines:
            await engine.dispose()


async def test_migrations_build_exactly_the_models_schema(settings: Settings) -> None:
    """Autogenerate finds nothing to do: every model change has its migration."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from keel.models import Base

    engine = create_engine(settings)
    try:
        await upgrade(engine)
        async with engine.connect() as connection:

            def diff(sync_connection: Any) -> list[Any]:
                opts = {"compare_type": True, "include_object": include_object}
                context = MigrationContext.configure(sync_connection, opts=opts)
                return list(compare_metadata(context, Base.metadata))

            differences = await connection.run_sync(diff)
    finally:
        await engine.dispose()
    # Tables of other tests' probe models share the database on PostgreSQL; GIN indexes
    # exist on PostgreSQL only; SQLite reflects the claim index's `priority DESC` as a
    # plain column, so autogenerate cannot compare it there.
    differences = [
        d
        for d in differences
        if not (d[0] == "remove_table" and d[1].name.startswith("probe_"))
        and not (settings.is_sqlite and d[0] == "add_index" and d[1].dialect_options["postgresql"]["using"])
        and not (
            settings.is_sqlite and d[0] in ("add_index", "remove_index") and d[1].name == "ix_jobs_claim"
        )
    ]
    assert differences == []
