"""The embedded mode: `keel serve` runs a worker in the API process."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI
from sqlalchemy import select

from keel.app import create_app
from keel.platform.queue import Job, Status, enqueue
from keel.platform.queue.maintenance import PROBE_TASK
from keel.settings import Settings
from tests.conftest import ClientFactory, make_settings, serve_app


def test_the_worker_runs_in_process_by_default_on_sqlite_only() -> None:
    assert make_settings(worker_in_process=None).runs_worker_in_process
    postgres = "postgresql+asyncpg://postgres@127.0.0.1/keel"
    assert not make_settings(worker_in_process=None, database_url=postgres).runs_worker_in_process
    assert make_settings(worker_in_process=True, database_url=postgres).runs_worker_in_process


async def test_an_app_with_an_in_process_worker_runs_committed_jobs(client_with: ClientFactory) -> None:
    async with client_with(worker_in_process=True, worker_poll_ms=5000) as client:
        app: FastAPI = client._transport.app
        resources = app.state.resources
        async with resources.db.writer() as session:
            job_id = await enqueue(session, PROBE_TASK, {})
            await session.commit()
        # Woken by the commit, not by the (5 s) poll.
        for _ in range(100):
            async with resources.db.sessionmaker() as session:
                job = (await session.execute(select(Job).where(Job.id == job_id))).scalar_one()
            if job.status == Status.SUCCEEDED:
                break
            await asyncio.sleep(0.02)
        assert job.status == Status.SUCCEEDED


async def test_without_the_setting_the_app_runs_no_worker(settings: Settings) -> None:
    app = create_app(settings)
    async with serve_app(app):
        resources = app.state.resources
        async with resources.db.writer() as session:
            job_id = await enqueue(session, PROBE_TASK, {})
            await session.commit()
        await asyncio.sleep(0.3)
        async with resources.db.writer() as session:
            job = (await session.execute(select(Job).where(Job.id == job_id))).scalar_one()
            assert job.status == Status.QUEUED
            await session.delete(job)
            await session.commit()
