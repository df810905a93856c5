"""Jobs tests run against an app that may call webhook receivers on loopback, with job
files in a temporary directory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from keel.jobs import files
from keel.platform.queue.worker import drain
from keel.settings import Settings
from keel.users.models import Role
from tests.conftest import make_settings
from tests.identity import Accounts, TestUser

JOBS = "/api/v2/jobs"
EXPORT_JOBS = "/api/v2/products/export-jobs"


@pytest.fixture(scope="module")
def settings(backend_settings: dict[str, Any]) -> Settings:
    return make_settings(**backend_settings, webhooks_allow_private_targets=True)


@pytest.fixture(autouse=True)
def export_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(files, "EXPORT_DIR", tmp_path / "exports")
    return tmp_path / "exports"


@pytest.fixture(scope="module")
async def settle_queue(app: FastAPI, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[None]:
    """Run what the module's tests left queued, so no due job outlives them (on PostgreSQL
    the database is shared with the rest of the run)."""
    yield
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(files, "EXPORT_DIR", tmp_path_factory.mktemp("exports"))
        await run_jobs(app)


@pytest.fixture(scope="module")
async def owner(accounts: Accounts) -> TestUser:
    return await accounts.create()


@pytest.fixture(scope="module")
async def stranger(accounts: Accounts) -> TestUser:
    return await accounts.create()


@pytest.fixture(scope="module")
async def admin(accounts: Accounts) -> TestUser:
    return await accounts.create(role=Role.ADMIN)


def job_url(job_id: str, action: str = "") -> str:
    return f"{JOBS}/{job_id}{action}"


async def run_jobs(app: FastAPI) -> int:
    """Run every due job in this process (the worker's ``drain``)."""
    return await drain(app.state.resources)


async def submit_export(client: httpx.AsyncClient, user: TestUser, **body: Any) -> str:
    response = await client.post(EXPORT_JOBS, json=body, headers=user.headers)
    assert response.status_code == 202, response.text
    job_id: str = response.json()["data"]["job_id"]
    return job_id


async def read_job(client: httpx.AsyncClient, user: TestUser, job_id: str) -> dict[str, Any]:
    response = await client.get(job_url(job_id), headers=user.headers)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data
