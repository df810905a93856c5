"""Webhook tests run real receivers on loopback, so the module's app allows private
targets; jobs run only when a test drains the queue (no in-process worker)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from fastapi import FastAPI

import keel.webhooks.tasks  # noqa: F401 - registers the delivery task and the events consumer
from keel.platform.resources import Resources
from keel.settings import Settings
from tests.conftest import make_settings
from tests.webhooks.helpers import run_jobs
from tests.webhooks.receiver import Answer, Receiver

# Shared with apps made by `client_with`, so tokens issued by the module's app work there.
WEBHOOK_SETTINGS: dict[str, Any] = {
    "webhooks_allow_private_targets": True,
    "worker_in_process": False,
    "secret_key": "webhooks-tests-only-" + "k" * 40,
}


@pytest.fixture(scope="module")
def settings(backend_settings: dict[str, Any]) -> Settings:
    return make_settings(**backend_settings, **WEBHOOK_SETTINGS)


@pytest.fixture(scope="module")
def resources(app: FastAPI) -> Resources:
    resources: Resources = app.state.resources
    return resources


@pytest.fixture(scope="module")
async def settle_queue(resources: Resources) -> AsyncIterator[None]:
    """Run what the module's tests left queued, so no due job outlives them (on
    PostgreSQL the database is shared with the rest of the run)."""
    yield
    await run_jobs(resources)


StartReceiver = Callable[..., Awaitable[Receiver]]


@pytest.fixture
async def receiver_factory() -> AsyncIterator[StartReceiver]:
    started: list[Receiver] = []

    async def start(*script: int | Answer, default: int | Answer = 200) -> Receiver:
        receiver = Receiver(*script, default=default)
        await receiver.start()
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        await receiver.stop()
