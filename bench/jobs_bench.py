"""``make bench-queue``: background jobs per second, end to end.

For each backend (SQLite file; PostgreSQL at 127.0.0.1:5432 in a fresh database that
is dropped afterwards) and for 1 and 2 ``keel worker`` processes: start the workers,
enqueue N no-op jobs (``queue.probe``) in batches of 1,000 from this process, and
time from the first enqueue until every job is ``succeeded`` in the database. The
jobs/s figure therefore includes enqueueing, claiming, running and recording.

    .venv/bin/python bench/jobs_bench.py [--jobs N] [--backends sqlite,postgres] [--concurrency C]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg
from sqlalchemy import delete, func, select

REPO_ROOT = Path(__file__).resolve().parent.parent
POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


@contextmanager
def sqlite_url() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="keel-benchq-") as workdir:
        yield f"sqlite+aiosqlite:///{workdir}/keel.db"


@contextmanager
def postgres_url() -> Iterator[str]:
    name = f"keel_benchq_{secrets.token_hex(4)}"

    async def admin(statement: str) -> None:
        connection = await asyncpg.connect(POSTGRES_ADMIN, timeout=3)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def start_workers(url: str, count: int, concurrency: int, logdir: Path) -> list[subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        "KEEL_DATABASE_URL": url,
        "KEEL_ENV": "test",
        "KEEL_LOG_LEVEL": "WARNING",
        "KEEL_LOG_FORMAT": "json",
        "KEEL_AUTO_MIGRATE": "false",
        "KEEL_WORKER_POLL_MS": "100",
    }
    keel = [sys.executable, "-m", "keel", "worker", "--concurrency", str(concurrency)]
    return [
        subprocess.Popen(
            keel, env=env, stdout=(logdir / f"worker-{i}.log").open("wb"), stderr=subprocess.STDOUT
        )
        for i in range(count)
    ]


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


async def run_once(url: str, jobs: int) -> float:
    from keel.platform.observability.metrics import HTTPMetrics
    from keel.platform.queue import Job, Status, enqueue_many
    from keel.platform.queue.maintenance import PROBE_TASK
    from keel.platform.resources import Resources
    from keel.settings import Settings
    from keel.tasks import registry

    resources = Resources.open(Settings(env="test", database_url=url, _env_file=None), HTTPMetrics())
    try:
        started = time.perf_counter()
        for offset in range(0, jobs, 1000):
            async with resources.db.writer() as session:
                await enqueue_many(
                    session, PROBE_TASK, [{} for _ in range(min(1000, jobs - offset))], tasks=registry
                )
                await session.commit()
        # Cheap to ask (an index probe), so the polling steals little from the workers.
        pending = select(Job.id).where(Job.status.in_([Status.QUEUED.value, Status.RUNNING.value])).limit(1)
        while True:
            async with resources.db.sessionmaker() as session:
                if (await session.execute(pending)).first() is None:
                    break
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - started
        async with resources.db.sessionmaker() as session:
            done = (
                await session.execute(
                    select(func.count())
                    .select_from(Job)
                    .where(Job.kind == PROBE_TASK, Job.status == Status.SUCCEEDED.value)
                )
            ).scalar_one()
        if done != jobs:
            raise SystemExit(f"{jobs - done} jobs did not succeed")
        async with resources.db.writer() as session:
            await session.execute(delete(Job))
            await session.commit()
        return jobs / elapsed
    finally:
        await resources.close()


async def migrate(url: str) -> None:
    from keel.platform.db.engine import create_engine
    from keel.platform.db.migrate import upgrade
    from keel.settings import Settings

    engine = create_engine(Settings(env="test", database_url=url, _env_file=None))
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--concurrency", type=int, default=32, help="per worker process")
    options = parser.parse_args()
    rows = []
    for backend in options.backends.split(","):
        with (
            sqlite_url() if backend == "sqlite" else postgres_url() as url,
            tempfile.TemporaryDirectory() as logs,
        ):
            asyncio.run(migrate(url))
            for workers in (1, 2):
                processes = start_workers(url, workers, options.concurrency, Path(logs))
                try:
                    time.sleep(2.0)  # imports and first connections
                    rate = asyncio.run(run_once(url, options.jobs))
                finally:
                    stop(processes)
                rows.append((backend, workers, rate))
                print(
                    f"{backend:9} workers={workers}  {rate:8.0f} jobs/s  ({options.jobs} no-op jobs)",
                    flush=True,
                )
    print("\nbackend   workers   jobs/s")
    for backend, workers, rate in rows:
        print(f"{backend:9} {workers:7} {rate:8.0f}")


if __name__ == "__main__":
    main()
