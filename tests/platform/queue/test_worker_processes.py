"""Real `keel worker` processes: a SIGKILLed worker loses nothing, and several workers
never run one job at the same time."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from keel.platform.observability.metrics import HTTPMetrics
from keel.platform.queue import Job, Status, enqueue, enqueue_many
from keel.platform.queue.maintenance import PROBE_TASK
from keel.platform.resources import Resources
from keel.tasks import registry
from tests.conftest import make_settings

pytestmark = pytest.mark.live


class WorkerProcess:
    def __init__(self, env: dict[str, str], log_path: Path, concurrency: int = 8) -> None:
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "keel", "worker", "--concurrency", str(concurrency)],
            env={**os.environ, **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()

    def events(self, name: str) -> list[dict[str, Any]]:
        found = []
        for line in self.log_path.read_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("event") == name:
                found.append(record)
        return found


@pytest.fixture(scope="module")
def worker_env(backend_settings: dict[str, Any]) -> dict[str, str]:
    env = {f"KEEL_{key.upper()}": str(value) for key, value in backend_settings.items()}
    env.update(
        KEEL_ENV="test",
        KEEL_LOG_FORMAT="json",
        KEEL_LOG_LEVEL="INFO",
        KEEL_AUTO_MIGRATE="false",
        KEEL_JOB_LEASE_SECONDS="2",
        KEEL_WORKER_POLL_MS="100",
        KEEL_WORKER_SHUTDOWN_GRACE_SECONDS="1",
    )
    return env


@pytest.fixture(scope="module")
async def resources(backend_settings: dict[str, Any]) -> AsyncIterator[Resources]:
    opened = Resources.open(make_settings(**backend_settings), HTTPMetrics())
    yield opened
    await opened.close()


@pytest.fixture
def spawn(worker_env: dict[str, str], tmp_path: Path) -> Iterator[Any]:
    started: list[WorkerProcess] = []

    def start(concurrency: int = 8) -> WorkerProcess:
        worker = WorkerProcess(worker_env, tmp_path / f"worker-{len(started)}.log", concurrency)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


async def status_of(resources: Resources, job_id: uuid.UUID) -> Job:
    async with resources.db.sessionmaker() as session:
        return (await session.execute(select(Job).where(Job.id == job_id))).scalar_one()


async def wait_for(predicate: Any, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not reached within {seconds}s")


async def test_a_job_of_a_killed_worker_completes_after_its_lease_expires(
    resources: Resources, spawn: Any
) -> None:
    async with resources.db.writer() as session:
        job_id = await enqueue(session, PROBE_TASK, {"sleep": 3}, tasks=registry)
        await session.commit()
    first = spawn()

    async def running() -> bool:
        return (await status_of(resources, job_id)).status == Status.RUNNING

    await wait_for(running, 20)
    first.stop(signal.SIGKILL)
    second = spawn()

    async def done() -> bool:
        return (await status_of(resources, job_id)).status == Status.SUCCEEDED

    # Lease (2 s) + reaper tick + the 3 s job again.
    await wait_for(done, 30)
    job = await status_of(resources, job_id)
    assert job.attempts == 2
    assert job.result is not None
    assert job.result["worker"] != (await status_of(resources, job_id)).lease_owner
    runs = [e for e in second.events("queue.probe.ran") if e["job_id"] == str(job_id)]
    assert len(runs) == 1
    assert first.events("queue.probe.ran") == []  # it died mid-job


async def test_sigterm_lets_a_running_job_finish_within_the_grace(resources: Resources, spawn: Any) -> None:
    async with resources.db.writer() as session:
        job_id = await enqueue(session, PROBE_TASK, {"sleep": 0.5}, tasks=registry)
        await session.commit()
    worker = spawn()

    async def running() -> bool:
        return (await status_of(resources, job_id)).status == Status.RUNNING

    await wait_for(running, 20)
    worker.stop(signal.SIGTERM)
    assert worker.process.returncode == 0
    job = await status_of(resources, job_id)
    assert (job.status, job.attempts) == (Status.SUCCEEDED, 1)


async def test_four_workers_run_every_job_and_never_one_twice_at_once(
    resources: Resources, spawn: Any
) -> None:
    count = 2000
    workers = [spawn(concurrency=16) for _ in range(4)]

    async def all_started() -> bool:
        return all(worker.events("queue.worker.started") for worker in workers)

    await wait_for(all_started, 30)
    async with resources.db.writer() as session:
        ids = await enqueue_many(session, PROBE_TASK, [{"sleep": 0} for _ in range(count)], tasks=registry)
        await session.commit()
    wanted = set(ids)

    async def all_done() -> bool:
        async with resources.db.sessionmaker() as session:
            done = await session.execute(
                select(func.count()).select_from(Job).where(Job.id.in_(ids), Job.status == Status.SUCCEEDED)
            )
        return done.scalar_one() == count

    await wait_for(all_done, 120)
    for worker in workers:
        worker.stop()
    runs: dict[str, list[tuple[float, float, str]]] = defaultdict(list)
    for worker in workers:
        for event in worker.events("queue.probe.ran"):
            runs[event["job_id"]].append((event["started"], event["ended"], event["worker"]))
    assert {uuid.UUID(job_id) for job_id in runs} >= wanted
    overlapping = []
    for job_id, intervals in runs.items():
        intervals.sort()
        for (_s1, e1, w1), (s2, _e2, w2) in itertools.pairwise(intervals):
            if s2 < e1:
                overlapping.append((job_id, w1, w2))
    assert overlapping == []
