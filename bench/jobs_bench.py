"""``make bench-queue``: background jobs and webhook deliveries per second, end to end.

For each backend (SQLite file; PostgreSQL at 127.0.0.1:5432 in a fresh database that
is dropped afterwards) and for 1 and 2 ``keel worker`` processes: start the workers,
enqueue N no-op jobs (``queue.probe``) in batches of 1,000 from this process, and
time from the first enqueue until every job is ``succeeded`` in the database. The
jobs/s figure therefore includes enqueueing, claiming, running and recording.

Then, per backend with 2 workers, webhook deliveries: one subscription to a receiver
on 127.0.0.1 (this process, answering 204), N events emitted in batches, timed until
the receiver has N signed POSTs (each event is a dispatch job, then a delivery job and
an HTTP request).

    .venv/bin/python -m bench.jobs_bench [--jobs N] [--deliveries N] [--backends sqlite,postgres]
                                         [--concurrency C]
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

from sqlalchemy import delete, func, select, text

from bench.common import migrate, postgres_backend, postgres_unavailable, sqlite_backend

# Shared by this process and the workers: webhook secrets are sealed with it.
SECRET_KEY = secrets.token_urlsafe(48)


@contextmanager
def database(backend: str, workdir: Path) -> Iterator[str]:
    """The URL of a fresh database: a SQLite file in ``workdir``, or a PostgreSQL
    database that is dropped afterwards."""
    with (
        sqlite_backend(workdir, "keel.db")
        if backend == "sqlite"
        else postgres_backend("keel_benchq", redis=False) as created
    ):
        yield created.database_url


def start_workers(url: str, count: int, concurrency: int, logdir: Path) -> list[subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        "KEEL_WEBHOOKS_ALLOW_PRIVATE_TARGETS": "true",
        "KEEL_SECRET_KEY": SECRET_KEY,
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


class Receiver:
    """A minimal HTTP/1.1 keep-alive server that answers every POST with 204."""

    def __init__(self) -> None:
        self.count = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                self.count += 1
                writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
        except asyncio.CancelledError:
            # The bench is over: end quietly (a cancelled handler makes asyncio print
            # a traceback for each open connection).
            writer.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()


async def deliveries_once(url: str, deliveries: int) -> float:
    from keel.audit.service import RequestMeta
    from keel.event_types import EventType
    from keel.platform.db.ids import new_id
    from keel.platform.events import emit
    from keel.platform.observability.metrics import HTTPMetrics
    from keel.platform.resources import Resources
    from keel.platform.security.permissions import effective_permissions
    from keel.platform.security.principal import Principal
    from keel.settings import Settings
    from keel.users import service as users
    from keel.webhooks import service as webhooks
    from keel.webhooks.schemas import WebhookCreate

    settings = Settings(
        env="test",
        database_url=url,
        secret_key=SECRET_KEY,
        webhooks_allow_private_targets=True,
        _env_file=None,
    )
    resources = Resources.open(settings, HTTPMetrics())
    receiver = Receiver()
    await receiver.start()
    try:
        async with resources.db.writer() as session:
            user = await users.create(
                session,
                resources.security.passwords,
                email=f"bench-{secrets.token_hex(4)}@example.com",
                password=secrets.token_urlsafe(16),
                full_name="Bench",
            )
            principal = Principal(user.id, "user", "free", effective_permissions("user"))
            await webhooks.create(
                session,
                principal,
                data=WebhookCreate(name="bench", url=f"http://127.0.0.1:{receiver.port}/hook", events=["*"]),
                resources=resources,
                meta=RequestMeta(ip=None, user_agent="bench", request_id=None),
            )
            await session.commit()
        started = time.perf_counter()
        for offset in range(0, deliveries, 500):
            async with resources.db.writer() as session:
                for _ in range(min(500, deliveries - offset)):
                    job_id = new_id()
                    await emit(
                        session,
                        EventType.JOB_SUCCEEDED,
                        {"id": str(job_id), "status": "succeeded"},
                        subject_type="job",
                        subject_id=job_id,
                        actor_id=user.id,
                    )
                await session.commit()
        deadline = time.monotonic() + 300
        while receiver.count < deliveries and time.monotonic() < deadline:  # noqa: ASYNC110 - polls a counter
            await asyncio.sleep(0.05)
        if receiver.count < deliveries:
            async with resources.db.sessionmaker() as session:
                errors = await session.execute(
                    text(
                        "SELECT error, count(*) FROM webhook_delivery_attempts "
                        "WHERE error IS NOT NULL GROUP BY error"
                    )
                )
                print("failed attempts:", errors.all())
            raise SystemExit(f"only {receiver.count} of {deliveries} deliveries arrived")
        return deliveries / (time.perf_counter() - started)
    finally:
        await receiver.close()
        await resources.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--deliveries", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32, help="per worker process")
    options = parser.parse_args()
    rows = []
    deliveries: list[tuple[str, float]] = []
    for backend in options.backends.split(","):
        if backend == "postgres" and (reason := postgres_unavailable()) is not None:
            print(f"postgres  skipped: {reason}", flush=True)
            continue
        with (
            tempfile.TemporaryDirectory(prefix="keel-benchq-") as logs,
            database(backend, Path(logs)) as url,
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
            processes = start_workers(url, 2, options.concurrency, Path(logs))
            try:
                time.sleep(2.0)
                delivered = asyncio.run(deliveries_once(url, options.deliveries))
            finally:
                stop(processes)
            deliveries.append((backend, delivered))
            print(f"{backend:9} workers=2  {delivered:8.0f} webhook deliveries/s", flush=True)
    print("\nbackend   workers   jobs/s")
    for backend, workers, rate in rows:
        print(f"{backend:9} {workers:7} {rate:8.0f}")
    print("\nbackend   workers   webhook deliveries/s (loopback receiver)")
    for backend, rate in deliveries:
        print(f"{backend:9} {2:7} {rate:8.0f}")


if __name__ == "__main__":
    main()
