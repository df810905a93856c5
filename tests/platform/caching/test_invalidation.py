"""Invalidations wait for the commit of the transaction that made them necessary."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from keel.platform.caching import MemoryCache, apply_committed, invalidate_on_commit
from keel.platform.db.engine import create_engine
from tests.conftest import make_settings

TTL = 60.0


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(make_settings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'c.db'}"))
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
async def cache() -> MemoryCache:
    cache = MemoryCache(10_000, fill_guard=0)
    await cache.set("product:1:u", b"v", ttl=TTL, tags=["product:1"])
    await cache.set("product:2:u", b"v", ttl=TTL, tags=["product:2"])
    return cache


async def test_nothing_is_invalidated_before_the_commit(engine: AsyncEngine, cache: MemoryCache) -> None:
    async with AsyncSession(engine) as session:
        await session.execute(text("SELECT 1"))
        invalidate_on_commit(session, "product:1")
        assert await apply_committed(session, cache) == 0
        assert await cache.get("product:1:u") == b"v"
        await session.commit()
        assert await apply_committed(session, cache) == 1
        assert await apply_committed(session, cache) == 0
    assert await cache.get("product:1:u") is None
    assert await cache.get("product:2:u") == b"v"


async def test_a_rolled_back_transaction_invalidates_nothing(engine: AsyncEngine, cache: MemoryCache) -> None:
    async with AsyncSession(engine) as session:
        await session.execute(text("SELECT 1"))
        invalidate_on_commit(session, "product:1")
        await session.rollback()
        assert await apply_committed(session, cache) == 0
    assert await cache.get("product:1:u") == b"v"


async def test_a_savepoint_release_is_not_the_commit(engine: AsyncEngine, cache: MemoryCache) -> None:
    async with AsyncSession(engine) as session:
        await session.execute(text("SELECT 1"))
        async with session.begin_nested():
            invalidate_on_commit(session, "product:1")
        assert await apply_committed(session, cache) == 0
        await session.commit()
        assert await apply_committed(session, cache) == 1


async def test_invalidations_of_several_commits_add_up(engine: AsyncEngine, cache: MemoryCache) -> None:
    async with AsyncSession(engine) as session:
        for tag in ("product:1", "product:2"):
            await session.execute(text("SELECT 1"))
            invalidate_on_commit(session, tag)
            await session.commit()
        assert await apply_committed(session, cache) == 2
