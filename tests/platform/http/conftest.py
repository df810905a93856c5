"""A probe router, attached to the app under test, that exercises the contract paths no
production route reaches on purpose (a crash, a declared conflict, a validated body)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Annotated

import pytest
from asgi_lifespan import LifespanManager
from fastapi import APIRouter, FastAPI
from pydantic import Field
from starlette.responses import Response

from keel.app import create_app
from keel.platform.http.envelope import Envelope, Schema, ok
from keel.platform.http.errors import Conflict
from keel.settings import Settings

SECRET_IN_EXCEPTION = "db-password=hunter2-very-secret"


class ProbeItem(Schema):
    name: Annotated[str, Field(min_length=1, max_length=10)]
    price: Annotated[Decimal, Field(ge=0, decimal_places=2)]
    tags: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list, max_length=3)


probe = APIRouter(prefix="/probe")


@probe.post("/items", response_model=Envelope[ProbeItem], status_code=201)
async def create_probe_item(item: ProbeItem) -> Response:
    return ok(item, status_code=201)


@probe.get("/items", response_model=Envelope[list[ProbeItem]])
async def list_probe_items() -> Response:
    items = [ProbeItem(name=f"item-{index}", price=Decimal(index)) for index in range(2)]
    return ok(items, meta={"pagination": {"total": 7, "page": 1, "per_page": 2}})


@probe.get("/boom")
async def boom() -> Response:
    raise RuntimeError(SECRET_IN_EXCEPTION)


@probe.get("/conflict")
async def conflict() -> Response:
    raise Conflict("That name is taken.", field="name")


def with_probe(settings: Settings) -> FastAPI:
    app = create_app(settings)
    app.include_router(probe)
    app.include_router(probe, prefix="/api/v2", generate_unique_id_function=lambda route: f"v2_{route.name}")
    return app


@pytest.fixture(scope="module")
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = with_probe(settings)
    async with LifespanManager(application):
        yield application
