"""KEEL_GC_FREEZE: what start-up made alive is frozen out of the garbage collector's walks."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from asgi_lifespan import LifespanManager

from keel.app import create_app
from keel.settings import Settings


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    try:
        yield
    finally:
        gc.unfreeze()


@pytest.mark.usefixtures("unfrozen")
async def test_a_started_app_freezes_what_start_up_left_alive(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"gc_freeze": True}))
    async with LifespanManager(app):
        # The modules, routes, schemas and pools: far more than a handful.
        assert gc.get_freeze_count() > 10_000


@pytest.mark.usefixtures("unfrozen")
async def test_nothing_is_frozen_when_switched_off(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"gc_freeze": False}))
    async with LifespanManager(app):
        assert gc.get_freeze_count() == 0
