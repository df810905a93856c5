"""The request owns the transaction: commit on success, roll back on any error, and a
commit that fails is an error response, never a 2xx."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Literal

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.responses import Response

from keel.app import create_app
from keel.platform.db import SessionDep
from keel.platform.db.engine import create_engine
from keel.platform.http.envelope import ok
from keel.platform.http.errors import Conflict
from keel.settings import Settings
from tests.conftest import serve_app

TABLE = f"probe_writes_{secrets.token_hex(3)}"
PARENTS = f"probe_parents_{secrets.token_hex(3)}"
CHILDREN = f"probe_children_{secrets.token_hex(3)}"

router = APIRouter(prefix="/probe")


@router.post("/writes/{note}")
async def write(note: str, session: SessionDep, fail: Literal["none", "keel", "crash"] = "none") -> Response:
    await session.execute(text(f"INSERT INTO {TABLE} (note) VALUES (:note)"), {"note": note})  # noqa: S608
    if fail == "keel":
        raise Conflict("declared failure after a write")
    if fail == "crash":
        raise RuntimeError("unexpected failure after a write")
    return ok({"written": note}, status_code=201)


@router.post("/orphans/{note}")
async def write_orphan(note: str, session: SessionDep) -> Response:
    # The foreign key is deferred: the INSERT succeeds and COMMIT fails.
    await session.execute(
        text(f"INSERT INTO {CHILDREN} (note, parent_id) VALUES (:note, 999)"),  # noqa: S608
        {"note": note},
    )
    return ok({"written": note}, status_code=201)


@pytest.fixture(scope="module")
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings)
    serial = "INTEGER PRIMARY KEY" if settings.is_sqlite else "SERIAL PRIMARY KEY"
    async with engine.begin() as connection:
        await connection.execute(text(f"CREATE TABLE {TABLE} (id {serial}, note TEXT NOT NULL)"))
        await connection.execute(text(f"CREATE TABLE {PARENTS} (id INTEGER PRIMARY KEY)"))
        await connection.execute(
            text(
                f"CREATE TABLE {CHILDREN} (id {serial}, note TEXT NOT NULL, parent_id INTEGER "
                f"REFERENCES {PARENTS} (id) DEFERRABLE INITIALLY DEFERRED)"
            )
        )
    yield engine
    async with engine.begin() as connection:
        for table in (CHILDREN, PARENTS, TABLE):
            await connection.execute(text(f"DROP TABLE {table}"))
    await engine.dispose()


@pytest.fixture(scope="module")
async def client(settings: Settings, engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    app: FastAPI = create_app(settings)
    app.include_router(router)
    async with serve_app(app) as client:
        yield client


async def count(engine: AsyncEngine, table: str, note: str) -> int:
    async with engine.connect() as connection:
        result = await connection.execute(text(f"SELECT COUNT(*) FROM {table} WHERE note = :n"), {"n": note})  # noqa: S608
        return int(result.scalar_one())


async def test_success_commits(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    response = await client.post("/probe/writes/committed")
    assert response.status_code == 201
    assert await count(engine, TABLE, "committed") == 1


async def test_declared_error_rolls_back(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    response = await client.post("/probe/writes/declared", params={"fail": "keel"})
    assert response.status_code == 409
    assert await count(engine, TABLE, "declared") == 0


async def test_crash_rolls_back(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    response = await client.post("/probe/writes/crashed", params={"fail": "crash"})
    assert response.status_code == 500
    assert await count(engine, TABLE, "crashed") == 0


async def test_failed_commit_is_an_error_response_not_a_success(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    response = await client.post("/probe/orphans/orphan")
    assert response.status_code == 500
    assert response.json()["errors"][0]["code"] == "INTERNAL_ERROR"
    assert await count(engine, CHILDREN, "orphan") == 0
