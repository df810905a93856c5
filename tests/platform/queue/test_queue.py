"""The job queue on both backends: enqueue in the caller's transaction, outcomes,
retries, leases, cancellation and periodic tasks."""

from __future__ import annotations

import asyncio
import importlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from keel.platform.db.base import utcnow
from keel.platform.observability.metrics import HTTPMetrics
from keel.platform.queue import Job, JobContext, JobFailed, Retry, Status, control, enqueue
from keel.platform.queue.registry import Registry
from keel.platform.queue.scheduler import enqueue_due, period_start
from keel.platform.queue.worker import MAX_RESULT_BYTES, Worker, claim, drain, reap
from keel.platform.resources import Resources
from keel.settings import Settings
from tests.conftest import make_settings


@pytest.fixture(scope="module")
async def resources(backend_settings: dict[str, Any]) -> AsyncIterator[Resources]:
    settings = make_settings(**backend_settings, job_lease_seconds=2, worker_poll_ms=50)
    opened = Resources.open(settings, HTTPMetrics())
    yield opened
    await opened.close()


@pytest.fixture
def tasks() -> Registry:
    """A registry of this test's own handlers (the app's are not involved)."""
    return Registry()


async def add(
    resources: Resources, tasks: Registry, kind: str, payload: dict[str, Any] | None = None, **kw: Any
) -> uuid.UUID:
    async with resources.db.writer() as session:
        job_id = await enqueue(session, kind, payload or {}, tasks=tasks, **kw)
        await session.commit()
    return job_id


async def load(resources: Resources, job_id: uuid.UUID) -> Job:
    async with resources.db.sessionmaker() as session:
        return (await session.execute(select(Job).where(Job.id == job_id))).scalar_one()


def kind() -> str:
    return f"test.{uuid.uuid4().hex[:12]}"


async def test_a_rolled_back_transaction_enqueues_nothing(resources: Resources, tasks: Registry) -> None:
    name = kind()
    tasks.task(name)(_ok)
    async with resources.db.writer() as session:
        job_id = await enqueue(session, name, {}, tasks=tasks)
        await session.rollback()
    async with resources.db.sessionmaker() as session:
        assert (await session.execute(select(Job).where(Job.id == job_id))).first() is None


async def _ok(ctx: JobContext) -> dict[str, Any]:
    return {"echo": ctx.payload, "attempt": ctx.attempt}


async def test_a_job_runs_and_keeps_its_result(resources: Resources, tasks: Registry) -> None:
    name = kind()
    tasks.task(name)(_ok)
    job_id = await add(resources, tasks, name, {"n": 1})
    assert await drain(resources, tasks=tasks) >= 1
    job = await load(resources, job_id)
    assert job.status == Status.SUCCEEDED
    assert job.result == {"echo": {"n": 1}, "attempt": 1}
    assert job.attempts == 1
    assert job.progress == 100
    assert job.started_at is not None
    assert job.finished_at is not None
    assert job.lease_owner is None


async def test_a_dedupe_key_holds_one_live_job_and_is_freed_when_it_ends(
    resources: Resources, tasks: Registry
) -> None:
    name = kind()
    tasks.task(name)(_ok)
    key = f"dedupe-{uuid.uuid4()}"
    first = await add(resources, tasks, name, dedupe_key=key)
    assert await add(resources, tasks, name, dedupe_key=key) == first
    await drain(resources, tasks=tasks)
    assert await add(resources, tasks, name, dedupe_key=key) != first


async def test_retry_requeues_with_its_delay_and_dies_after_max_attempts(
    resources: Resources, tasks: Registry
) -> None:
    name = kind()

    async def flaky(ctx: JobContext) -> None:
        raise Retry("receiver said 503", after=120)

    tasks.task(name, max_attempts=2)(flaky)
    job_id = await add(resources, tasks, name)
    before = utcnow()
    await drain(resources, tasks=tasks)
    job = await load(resources, job_id)
    assert (job.status, job.attempts, job.last_error) == (Status.QUEUED, 1, "receiver said 503")
    assert job.run_at >= before + timedelta(seconds=119)
    # Not due yet: a drain now runs nothing of it.
    await drain(resources, tasks=tasks)
    assert (await load(resources, job_id)).attempts == 1
    await drain(resources, tasks=tasks, now=utcnow() + timedelta(seconds=121))
    job = await load(resources, job_id)
    assert (job.status, job.attempts) == (Status.DEAD, 2)
    assert job.finished_at is not None


async def test_an_unexpected_exception_is_retried_with_backoff_and_hides_its_message(
    resources: Resources, tasks: Registry
) -> None:
    name = kind()

    async def broken(ctx: JobContext) -> None:
        raise RuntimeError("password=hunter2 in a stack")

    tasks.task(name, max_attempts=3, backoff_base=10, backoff_max=10)(broken)
    job_id = await add(resources, tasks, name)
    before = utcnow()
    await drain(resources, tasks=tasks)
    job = await load(resources, job_id)
    assert job.status == Status.QUEUED
    assert job.last_error == "internal error (RuntimeError)"
    # Equal jitter: between half the delay and the delay.
    assert before + timedelta(seconds=5) <= job.run_at <= utcnow() + timedelta(seconds=10)


async def test_job_failed_ends_the_job_without_retry(resources: Resources, tasks: Registry) -> None:
    name = kind()

    async def refuse(ctx: JobContext) -> None:
        raise JobFailed("the file is not a PDF")

    tasks.task(name, max_attempts=5)(refuse)
    job_id = await add(resources, tasks, name)
    await drain(resources, tasks=tasks)
    job = await load(resources, job_id)
    assert (job.status, job.attempts, job.last_error) == (Status.FAILED, 1, "the file is not a PDF")


async def test_a_handler_over_its_timeout_is_stopped_and_retried(
    resources: Resources, tasks: Registry
) -> None:
    name = kind()

    async def slow(ctx: JobContext) -> None:
        await asyncio.sleep(5)

    tasks.task(name, timeout=0.05, max_attempts=1)(slow)
    job_id = await add(resources, tasks, name)
    await drain(resources, tasks=tasks)
    job = await load(resources, job_id)
    assert (job.status, job.last_error) == (Status.DEAD, "timed out after 0.05 s")


async def test_errors_and_results_are_bounded(resources: Resources, tasks: Registry) -> None:
    big, long_error = kind(), kind()

    async def huge(ctx: JobContext) -> str:
        return "x" * (MAX_RESULT_BYTES + 1)

    async def chatty(ctx: JobContext) -> None:
        raise JobFailed("e" * 10_000)

    tasks.task(big)(huge)
    tasks.task(long_error)(chatty)
    big_id, error_id = await add(resources, tasks, big), await add(resources, tasks, long_error)
    await drain(resources, tasks=tasks)
    job = await load(resources, big_id)
    assert job.status == Status.SUCCEEDED
    assert job.result is None
    assert job.last_error is not None
    assert "not stored" in job.last_error
    assert len((await load(resources, error_id)).last_error or "") == 2000


async def test_progress_is_recorded_while_the_job_runs(resources: Resources, tasks: Registry) -> None:
    name = kind()
    seen: list[int] = []

    async def steps(ctx: JobContext) -> None:
        await ctx.progress(40)
        seen.append((await load(resources, ctx.job_id)).progress)
        await ctx.progress(250)  # clamped
        seen.append((await load(resources, ctx.job_id)).progress)

    tasks.task(name)(steps)
    await add(resources, tasks, name)
    await drain(resources, tasks=tasks)
    assert seen == [40, 100]


async def test_an_expired_lease_is_reaped_and_the_job_runs_again(
    resources: Resources, tasks: Registry
) -> None:
    name = kind()
    tasks.task(name, max_attempts=3)(_ok)
    job_id = await add(resources, tasks, name)
    # A worker claims it and dies without a word.
    async with resources.db.writer() as session:
        claimed = await claim(session, "dead-worker", limit=100, lease=0.01, now=utcnow())
        await session.commit()
    assert job_id in {job.id for job in claimed}
    await asyncio.sleep(0.05)
    async with resources.db.writer() as session:
        assert await reap(session, utcnow()) >= 1
        await session.commit()
    await drain(resources, tasks=tasks)
    job = await load(resources, job_id)
    assert (job.status, job.attempts) == (Status.SUCCEEDED, 2)
    assert job.result == {"echo": {}, "attempt": 2}


async def test_a_lost_job_on_its_last_attempt_is_dead_not_retried(
    resources: Resources, tasks: Registry
) -> None:
    name = kind()
    tasks.task(name, max_attempts=1)(_ok)
    job_id = await add(resources, tasks, name)
    async with resources.db.writer() as session:
        await claim(session, "dead-worker", limit=100, lease=0.01, now=utcnow())
        await session.commit()
    await asyncio.sleep(0.05)
    async with resources.db.writer() as session:
        await reap(session, utcnow())
        await session.commit()
    job = await load(resources, job_id)
    assert job.status == Status.DEAD
    assert job.last_error is not None
    assert "lease expired" in job.last_error


async def test_a_stale_worker_cannot_overwrite_a_job_it_lost(resources: Resources, tasks: Registry) -> None:
    name = kind()
    tasks.task(name)(_ok)
    job_id = await add(resources, tasks, name)
    async with resources.db.writer() as session:
        await claim(session, "slow-worker", limit=100, lease=0.01, now=utcnow())
        await session.commit()
    await asyncio.sleep(0.05)
    async with resources.db.writer() as session:
        await reap(session, utcnow())
        await session.commit()
    await drain(resources, tasks=tasks)  # the job ran again elsewhere
    from keel.platform.queue.worker import Claimed, Outcome, record

    stale = Outcome(Claimed(job_id, name, {}, 1, 5, None), Status.FAILED, error="late")
    async with resources.db.writer() as session:
        await record(session, "slow-worker", [stale], utcnow(), tasks)
        await session.commit()
    job = await load(resources, job_id)
    assert (job.status, job.last_error) == (Status.SUCCEEDED, None)


async def test_cancelling_a_running_job_stops_its_handler(resources: Resources, tasks: Registry) -> None:
    name = kind()
    started, stopped = asyncio.Event(), asyncio.Event()

    async def long_job(ctx: JobContext) -> None:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            stopped.set()
            raise

    tasks.task(name)(long_job)
    job_id = await add(resources, tasks, name)
    worker = Worker(resources, tasks=tasks, concurrency=2)
    running = asyncio.create_task(worker.run())
    try:
        await asyncio.wait_for(started.wait(), 10)
        async with resources.db.writer() as session:
            assert await control.cancel(session, job_id)
            await session.commit()
        # The heartbeat (a third of the 2 s lease) notices.
        await asyncio.wait_for(stopped.wait(), 5)
    finally:
        worker.stop()
        await running
    job = await load(resources, job_id)
    assert job.status == Status.CANCELLED
    async with resources.db.writer() as session:
        assert not await control.cancel(session, job_id)  # already finished


async def test_admin_retry_requeues_a_dead_job_with_fresh_attempts(
    resources: Resources, tasks: Registry
) -> None:
    name = kind()
    calls: list[int] = []

    async def once_broken(ctx: JobContext) -> str:
        calls.append(ctx.attempt)
        if len(calls) == 1:
            raise JobFailed("first time")
        return "ok"

    tasks.task(name)(once_broken)
    job_id = await add(resources, tasks, name)
    await drain(resources, tasks=tasks)
    async with resources.db.writer() as session:
        assert await control.retry(session, job_id)
        await session.commit()
    await drain(resources, tasks=tasks)
    job = await load(resources, job_id)
    assert (job.status, job.attempts, job.result) == (Status.SUCCEEDED, 1, "ok")


async def test_a_worker_runs_jobs_as_soon_as_they_are_committed(
    resources: Resources, tasks: Registry
) -> None:
    name = kind()
    tasks.task(name)(_ok)
    worker = Worker(resources, tasks=tasks, concurrency=4)
    running = asyncio.create_task(worker.run())
    try:
        ids = [await add(resources, tasks, name, {"i": i}) for i in range(20)]
        for _ in range(200):
            statuses = {(await load(resources, job_id)).status for job_id in ids}
            if statuses == {Status.SUCCEEDED}:
                break
            await asyncio.sleep(0.05)
    finally:
        worker.stop()
        await running
    assert statuses == {Status.SUCCEEDED}


async def test_shutdown_releases_unfinished_jobs_without_spending_an_attempt(
    backend_settings: dict[str, Any], tasks: Registry
) -> None:
    settings: Settings = make_settings(
        **backend_settings, worker_shutdown_grace_seconds=0.1, worker_poll_ms=50
    )
    resources = Resources.open(settings, HTTPMetrics())
    name = kind()
    started = asyncio.Event()

    async def stubborn(ctx: JobContext) -> None:
        started.set()
        await asyncio.sleep(30)

    tasks.task(name)(stubborn)
    try:
        job_id = await add(resources, tasks, name)
        worker = Worker(resources, tasks=tasks)
        running = asyncio.create_task(worker.run())
        await asyncio.wait_for(started.wait(), 10)
        worker.stop()
        await asyncio.wait_for(running, 5)
        job = await load(resources, job_id)
        assert (job.status, job.attempts, job.lease_owner) == (Status.QUEUED, 0, None)
    finally:
        await resources.close()


async def test_a_periodic_task_runs_once_per_period_whatever_the_workers(
    resources: Resources, tasks: Registry
) -> None:
    name = kind()
    tasks.task(name)(_ok)
    tasks.every(timedelta(hours=1), name)
    now = utcnow()

    async def tick(at: Any) -> list[str]:
        async with resources.db.writer() as session:
            started = await enqueue_due(session, tasks, at)
            await session.commit()
        return started

    # Many workers ticking in the same period: one enqueues.
    results = [await tick(now) for _ in range(5)]
    assert sum(len(r) for r in results) == 1
    assert await tick(period_start(now, timedelta(hours=1)) + timedelta(hours=1)) == [name]


async def test_periods_align_on_the_interval() -> None:
    at = utcnow().replace(minute=37, second=12)
    assert period_start(at, timedelta(hours=1)) == at.replace(minute=0, second=0, microsecond=0)


async def test_across_processes_postgres_wakes_workers_and_sqlite_waits_for_the_poll(
    backend: str, resources: Resources, tasks: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The module, not the function the package re-exports under the same name.
    enqueue_module = importlib.import_module("keel.platform.queue.enqueue")
    name = kind()
    ran = asyncio.Event()

    async def mark(ctx: JobContext) -> None:
        ran.set()

    tasks.task(name)(mark)
    slow_poll = replace(resources, settings=resources.settings.model_copy(update={"worker_poll_ms": 30_000}))
    worker = Worker(slow_poll, tasks=tasks)
    running = asyncio.create_task(worker.run())
    try:
        await asyncio.sleep(0.5)  # listening (PostgreSQL), past the first claim
        # As another process would: no in-process wake-up, only what the database says.
        monkeypatch.setattr(enqueue_module, "_wake_local", lambda: None)
        await add(resources, tasks, name)
        woke = True
        try:
            await asyncio.wait_for(ran.wait(), 3)
        except TimeoutError:
            woke = False
    finally:
        worker.stop()
        await running
    assert woke is (backend == "postgres")


async def test_workers_wake_after_a_commit_never_after_a_rollback(
    resources: Resources, tasks: Registry
) -> None:
    from keel.platform.queue.enqueue import local_wakeups

    name = kind()
    tasks.task(name)(_ok)
    wakeup = asyncio.Event()
    local_wakeups.add(wakeup)
    try:
        async with resources.db.writer() as session:
            await enqueue(session, name, {}, tasks=tasks)
            await session.rollback()
            assert not wakeup.is_set()
            # The same session, a new transaction: it wakes them once it commits.
            await enqueue(session, name, {}, tasks=tasks)
            assert not wakeup.is_set()
            await session.commit()
        assert wakeup.is_set()
    finally:
        local_wakeups.discard(wakeup)
    await drain(resources, tasks=tasks)
