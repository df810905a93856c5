"""The worker: claims due jobs in batches, runs their handlers, renews their leases and
records how they ended.

- Claiming is one ``UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED)`` on
  PostgreSQL; on SQLite the same statement runs under ``BEGIN IMMEDIATE``, which holds
  the database's single write lock, so two workers never claim the same row.
- A claimed job carries a lease (owner + expiry) renewed by a heartbeat; a job whose
  worker died is queued again by any worker's reaper once the lease has expired. A
  job that lost its lease (reaped, or cancelled) is stopped and its outcome dropped:
  every write of an outcome checks the lease owner.
- Outcomes are written in batches (one transaction for whatever finished meanwhile).
- PostgreSQL workers wake on ``LISTEN``; every worker also polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, cast

import asyncpg
import orjson
import structlog
from sqlalchemy import Integer, Table, bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from keel.platform.db.base import utcnow
from keel.platform.db.engine import Database
from keel.platform.queue import scheduler
from keel.platform.queue.context import JobContext, JobFailed, Retry
from keel.platform.queue.enqueue import NOTIFY_CHANNEL, local_wakeups
from keel.platform.queue.models import Job, Status
from keel.platform.queue.registry import Registry, TaskSpec, UnknownTask, registry
from keel.platform.resources import Resources

log = structlog.get_logger("keel.queue")

MAX_RESULT_BYTES = 64 * 1024
MAX_ERROR_CHARS = 2000
# A job whose kind this worker does not know waits this long for a worker that does.
UNKNOWN_KIND_DELAY = 60.0
LISTEN_RECONNECT_MAX = 30.0
CLAIM_DEBOUNCE_SECONDS = 0.005
CANCEL_UNWIND_SECONDS = 2.0
_RUNNING = Status.RUNNING.value


def worker_name() -> str:
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True, slots=True)
class Claimed:
    id: uuid.UUID
    kind: str
    payload: dict[str, Any]
    attempts: int
    max_attempts: int
    owner_id: uuid.UUID | None


@dataclass(slots=True)
class Outcome:
    job: Claimed
    status: Status
    result: Any = None
    error: str | None = None
    run_at: datetime | None = None

    def requeue_after(self, seconds: float) -> Outcome:
        """Queued again ``seconds`` after ``run_at``, or dead when no attempt is left."""
        if self.job.attempts >= self.job.max_attempts:
            return replace(self, status=Status.DEAD, run_at=None)
        start = self.run_at or utcnow()
        return replace(self, run_at=start + timedelta(seconds=max(0.0, seconds)))


def backoff_seconds(spec: TaskSpec, attempt: int) -> float:
    """Exponential, capped, with "equal jitter": half fixed, half random, so retries of
    many jobs that failed together spread out instead of arriving in a herd."""
    delay = float(min(spec.backoff_max, spec.backoff_base * 2 ** max(0, attempt - 1)))
    return delay / 2 + random.uniform(0, delay / 2)  # noqa: S311 - jitter, not security


def _bounded_error(message: str) -> str:
    return message if len(message) <= MAX_ERROR_CHARS else message[: MAX_ERROR_CHARS - 1] + "…"


def _bounded_result(result: Any) -> tuple[Any, str | None]:
    if result is None:
        return None, None
    try:
        size = len(orjson.dumps(result))
    except TypeError:
        return None, "the result is not JSON-serialisable; not stored"
    if size > MAX_RESULT_BYTES:
        return None, f"the result is {size} bytes (over {MAX_RESULT_BYTES}); not stored"
    return result, None


async def run_handler(spec: TaskSpec | None, job: Claimed, context: JobContext, now: datetime) -> Outcome:
    """Run one job's handler and decide what becomes of the job."""
    if spec is None:
        return Outcome(
            job, Status.QUEUED, error=f"no handler for {job.kind!r} in this worker", run_at=now
        ).requeue_after(UNKNOWN_KIND_DELAY)
    try:
        async with asyncio.timeout(spec.timeout):
            result = await spec.handler(context)
    except JobFailed as exc:
        return Outcome(job, Status.FAILED, error=_bounded_error(exc.message))
    except Retry as exc:
        delay = exc.after if exc.after is not None else backoff_seconds(spec, job.attempts)
        return Outcome(job, Status.QUEUED, error=_bounded_error(exc.message), run_at=now).requeue_after(delay)
    except TimeoutError:
        error = f"timed out after {spec.timeout:g} s"
        return Outcome(job, Status.QUEUED, error=error, run_at=now).requeue_after(
            backoff_seconds(spec, job.attempts)
        )
    except Exception as exc:
        # The traceback goes to the log; the job (which its owner can read) says only
        # what kind of failure it was.
        log.exception("queue.job.error", job_id=str(job.id), kind=job.kind, attempt=job.attempts)
        error = f"internal error ({type(exc).__name__})"
        return Outcome(job, Status.QUEUED, error=error, run_at=now).requeue_after(
            backoff_seconds(spec, job.attempts)
        )
    stored, problem = _bounded_result(result)
    return Outcome(job, Status.SUCCEEDED, result=stored, error=problem)


# --- SQL ------------------------------------------------------------------------------


async def claim(
    session: AsyncSession, owner: str, *, limit: int, lease: float, now: datetime
) -> list[Claimed]:
    due = (
        select(Job.id)
        .where(Job.status == Status.QUEUED.value, Job.run_at <= now)
        .order_by(Job.priority.desc(), Job.run_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    statement = (
        update(Job)
        .where(Job.id.in_(due.scalar_subquery()))
        .values(
            status=_RUNNING,
            lease_owner=owner,
            lease_expires_at=now + timedelta(seconds=lease),
            attempts=Job.attempts + 1,
            started_at=func.coalesce(Job.started_at, now),
        )
        .returning(Job.id, Job.kind, Job.payload, Job.attempts, Job.max_attempts, Job.owner_id)
        .execution_options(synchronize_session=False)
    )
    rows = (await session.execute(statement)).all()
    return [Claimed(*row) for row in rows]


async def any_due(session: AsyncSession, now: datetime) -> bool:
    statement = select(Job.id).where(Job.status == Status.QUEUED.value, Job.run_at <= now).limit(1)
    return (await session.execute(statement)).first() is not None


_table = cast(Table, Job.__table__)
_ENDING: dict[str, Any] = {
    "status": bindparam("b_status"),
    "result": bindparam("b_result"),
    "last_error": bindparam("b_error"),
    # A success is 100 %; otherwise the job keeps what it reported.
    "progress": func.coalesce(bindparam("b_progress", type_=Integer()), _table.c.progress),
    "finished_at": bindparam("b_finished"),
    "run_at": bindparam("b_run_at"),
    "lease_owner": None,
    "lease_expires_at": None,
}
_HELD = (_table.c.lease_owner == bindparam("b_owner"), _table.c.status == _RUNNING)
# One job per parameter set (executemany).
_FINISH = _table.update().where(_table.c.id == bindparam("b_id"), *_HELD).values(**_ENDING)
# Many jobs that ended the same way, in one statement.
_FINISH_ALIKE = (
    _table.update().where(_table.c.id.in_(bindparam("b_ids", expanding=True)), *_HELD).values(**_ENDING)
)


async def record(
    session: AsyncSession, owner: str, outcomes: Sequence[Outcome], now: datetime, tasks: Registry
) -> None:
    """Write how jobs ended, for those this worker still holds."""
    params = []
    for outcome in outcomes:
        finished = outcome.status is not Status.QUEUED
        params.append(
            {
                "b_id": outcome.job.id,
                "b_owner": owner,
                "b_status": outcome.status.value,
                "b_result": outcome.result,
                "b_error": outcome.error,
                "b_progress": 100 if outcome.status is Status.SUCCEEDED else None,
                "b_finished": now if finished else None,
                "b_run_at": outcome.run_at or now,
            }
        )
    connection = await session.connection()
    # Jobs that ended alike (no-op and fire-and-forget jobs mostly do) are written with
    # one statement per kind of ending; the rest in one executemany.
    alike: dict[bytes, list[dict[str, Any]]] = {}
    for param, outcome in zip(params, outcomes, strict=True):
        if not _announced(outcome):
            alike.setdefault(_ending_key(param), []).append(param)
    single = [group[0] for group in alike.values() if len(group) == 1]
    if single:
        await connection.execute(_FINISH, single)
    for group in alike.values():
        if len(group) > 1:
            shared = {key: value for key, value in group[0].items() if key != "b_id"}
            await connection.execute(_FINISH_ALIKE, {**shared, "b_ids": [param["b_id"] for param in group]})
    for param, outcome in zip(params, outcomes, strict=True):
        if not _announced(outcome):
            continue
        # A user's job ended for good: the hooks (its events) go in this transaction,
        # and only when the row really ended here (this worker still held it).
        updated = (await connection.execute(_FINISH.returning(*_table.c), param)).first()
        if updated is not None:
            job = Job(**updated._asdict())
            for hook in tasks.finished_hooks:
                await hook(session, job)


def _ending_key(param: dict[str, Any]) -> bytes:
    return orjson.dumps(
        {key: value for key, value in param.items() if key != "b_id"},
        option=orjson.OPT_SORT_KEYS,
        default=str,
    )


def _announced(outcome: Outcome) -> bool:
    return outcome.job.owner_id is not None and outcome.status is not Status.QUEUED


async def renew(session: AsyncSession, owner: str, lease: float, now: datetime) -> set[uuid.UUID]:
    statement = (
        update(Job)
        .where(Job.lease_owner == owner, Job.status == _RUNNING)
        .values(lease_expires_at=now + timedelta(seconds=lease))
        .returning(Job.id)
        .execution_options(synchronize_session=False)
    )
    return set((await session.execute(statement)).scalars())


async def release(session: AsyncSession, owner: str, job_ids: Sequence[uuid.UUID], now: datetime) -> None:
    """Give jobs back unfinished (shutdown): the attempt they were on does not count."""
    statement = (
        update(Job)
        .where(Job.id.in_(job_ids), Job.lease_owner == owner, Job.status == _RUNNING)
        .values(
            status=Status.QUEUED.value,
            attempts=Job.attempts - 1,
            run_at=now,
            lease_owner=None,
            lease_expires_at=None,
        )
        .execution_options(synchronize_session=False)
    )
    await session.execute(statement)


async def reap(session: AsyncSession, now: datetime) -> int:
    """Queue again the jobs whose worker stopped renewing their lease (or kill them when
    that was their last attempt)."""
    expired = (Job.status == _RUNNING, Job.lease_expires_at < now)
    dead = (
        update(Job)
        .where(*expired, Job.attempts >= Job.max_attempts)
        .values(
            status=Status.DEAD.value,
            last_error="the worker running it stopped (lease expired) on the last attempt",
            finished_at=now,
            lease_owner=None,
            lease_expires_at=None,
        )
        .execution_options(synchronize_session=False)
    )
    requeued = (
        update(Job)
        .where(*expired)
        .values(
            status=Status.QUEUED.value,
            last_error="the worker running it stopped (lease expired)",
            run_at=now,
            lease_owner=None,
            lease_expires_at=None,
        )
        .execution_options(synchronize_session=False)
    )
    total = 0
    for statement in (dead, requeued):
        total += (await session.execute(statement)).rowcount  # type: ignore[attr-defined]
    return total


# --- The worker -----------------------------------------------------------------------


class Worker:
    def __init__(
        self,
        resources: Resources,
        *,
        concurrency: int | None = None,
        tasks: Registry = registry,
        name: str | None = None,
    ) -> None:
        settings = resources.settings
        self.resources = resources
        self.db: Database = resources.db
        self.tasks = tasks
        self.name = name or worker_name()
        self.concurrency = concurrency or settings.worker_concurrency
        self.lease = float(settings.job_lease_seconds)
        self.poll = settings.worker_poll_ms / 1000
        self.grace = settings.worker_shutdown_grace_seconds
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._running: dict[uuid.UUID, asyncio.Task[None]] = {}
        self._outcomes: asyncio.Queue[Outcome] = asyncio.Queue()
        self._flush_lock = asyncio.Lock()
        self._loops: list[asyncio.Task[None]] = []

    # Lifecycle ------------------------------------------------------------------------

    async def run(self) -> None:
        """Work until :meth:`stop`; then finish or release what is running."""
        local_wakeups.add(self._wake)
        self._loops = [
            asyncio.create_task(self._flush_loop(), name="queue.flush"),
            asyncio.create_task(self._heartbeat_loop(), name="queue.heartbeat"),
            asyncio.create_task(self._maintenance_loop(), name="queue.maintenance"),
        ]
        if not self.db.is_sqlite:
            self._loops.append(asyncio.create_task(self._listen_loop(), name="queue.listen"))
        log.info("queue.worker.started", worker=self.name, concurrency=self.concurrency)
        try:
            await self._claim_loop()
        finally:
            await self._drain_running()
            for task in self._loops:
                task.cancel()
            for task in self._loops:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self._flush()
            local_wakeups.discard(self._wake)
            for hook in self.tasks.stopped_hooks:
                try:
                    await hook()
                except Exception:
                    log.warning("queue.worker.stop_hook_failed", hook=hook.__qualname__, exc_info=True)
            log.info("queue.worker.stopped", worker=self.name)

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def _drain_running(self) -> None:
        if self._running:
            log.info("queue.worker.draining", worker=self.name, running=len(self._running), grace=self.grace)
            _done, pending = await asyncio.wait(list(self._running.values()), timeout=self.grace)
            unfinished = [job_id for job_id, task in self._running.items() if task in pending]
            for task in pending:
                task.cancel()
            if pending:
                # Let the cancelled handlers unwind (roll back, close their sessions)
                # before their jobs are released and the engine goes away.
                await asyncio.wait(pending, timeout=CANCEL_UNWIND_SECONDS)
            if unfinished:
                with contextlib.suppress(Exception):
                    async with self.db.writer() as session:
                        await release(session, self.name, unfinished, utcnow())
                        await session.commit()
                log.info("queue.worker.released", worker=self.name, jobs=len(unfinished))
        await self._flush()

    # Claiming and running --------------------------------------------------------------

    async def _claim_loop(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            self._wake.clear()
            free = self.concurrency - len(self._running)
            claimed: list[Claimed] = []
            if free > 0:
                try:
                    claimed = await self._claim(free)
                    failures = 0
                except Exception:
                    failures += 1
                    log.warning("queue.claim.failed", worker=self.name, exc_info=True)
                    with contextlib.suppress(TimeoutError):  # a stop ends the back-off
                        await asyncio.wait_for(self._stopping.wait(), timeout=min(30.0, 0.5 * 2**failures))
                    continue
            for job in claimed:
                self._running[job.id] = asyncio.create_task(self._run(job), name=f"job:{job.kind}")
            if claimed and len(claimed) == free:
                continue  # there may be more due right now
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll)
                if self._running:
                    # Woken by a finishing job: let a few more finish, then claim for
                    # all their slots in one statement rather than one claim per slot.
                    await asyncio.sleep(CLAIM_DEBOUNCE_SECONDS)

    async def _claim(self, limit: int) -> list[Claimed]:
        now = utcnow()
        if self.db.is_sqlite:
            # Look without the write lock first: an idle worker must not keep taking it.
            async with self.db.sessionmaker() as session:
                if not await any_due(session, now):
                    return []
        async with self.db.writer() as session:
            claimed = await claim(session, self.name, limit=limit, lease=self.lease, now=now)
            await session.commit()
        return claimed

    def _context(self, job: Claimed) -> JobContext:
        return JobContext(
            job_id=job.id,
            kind=job.kind,
            payload=job.payload,
            attempt=job.attempts,
            max_attempts=job.max_attempts,
            owner_id=job.owner_id,
            resources=self.resources,
            worker=self.name,
            _report_progress=self._progress,
        )

    async def _run(self, job: Claimed) -> None:
        try:
            spec = self.tasks.tasks.get(job.kind)
            outcome = await run_handler(spec, job, self._context(job), utcnow())
            log.debug("queue.job.ended", job_id=str(job.id), kind=job.kind, status=outcome.status.value)
            self._outcomes.put_nowait(outcome)
        finally:
            self._running.pop(job.id, None)
            self._wake.set()

    async def _progress(self, job_id: uuid.UUID, percent: int) -> None:
        async with self.db.writer() as session:
            await session.execute(
                update(Job)
                .where(Job.id == job_id, Job.lease_owner == self.name, Job.status == _RUNNING)
                .values(progress=percent)
                .execution_options(synchronize_session=False)
            )
            await session.commit()

    # Background loops --------------------------------------------------------------------

    async def _flush(self) -> None:
        async with self._flush_lock:
            await self._flush_batch()

    async def _flush_batch(self) -> None:
        batch: list[Outcome] = []
        while not self._outcomes.empty():
            batch.append(self._outcomes.get_nowait())
        if not batch:
            return
        for attempt in range(5):
            try:
                async with self.db.writer() as session:
                    await record(session, self.name, batch, utcnow(), self.tasks)
                    await session.commit()
                return
            except Exception:
                log.warning("queue.record.failed", worker=self.name, jobs=len(batch), exc_info=True)
                await asyncio.sleep(0.2 * 2**attempt)
        # The leases will expire and the reaper will run these jobs again: at least once.
        log.error("queue.record.gave_up", worker=self.name, jobs=len(batch))

    async def _flush_loop(self) -> None:
        while True:
            first = await self._outcomes.get()
            self._outcomes.put_nowait(first)
            # Shielded: stopping the worker cancels this loop, but never a write in
            # flight; the final flush waits for it on the lock.
            await asyncio.shield(self._flush())

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.lease / 3)
            if not self._running:
                continue
            try:
                async with self.db.writer() as session:
                    held = await renew(session, self.name, self.lease, utcnow())
                    await session.commit()
            except Exception:
                log.warning("queue.heartbeat.failed", worker=self.name, exc_info=True)
                continue
            for job_id, task in list(self._running.items()):
                if job_id not in held:
                    # Cancelled by its owner, or reaped after a stall: stop it; its
                    # outcome would not be recorded anyway.
                    log.info("queue.job.lease_lost", job_id=str(job_id), worker=self.name)
                    task.cancel()

    async def _maintenance_loop(self) -> None:
        interval = min(self.lease / 2, scheduler.TICK_SECONDS)
        while True:
            try:
                async with self.db.writer() as session:
                    now = utcnow()
                    reaped = await reap(session, now)
                    scheduled = await scheduler.enqueue_due(session, self.tasks, now)
                    await session.commit()
                if reaped:
                    log.warning("queue.reaped", jobs=reaped, worker=self.name)
                if scheduled:
                    log.info("queue.scheduled", tasks=scheduled, worker=self.name)
            except Exception:
                log.warning("queue.maintenance.failed", worker=self.name, exc_info=True)
            await asyncio.sleep(interval)

    async def _listen_loop(self) -> None:
        url = self.db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        delay = 0.5
        while True:
            try:
                connection = await asyncpg.connect(url, timeout=self.resources.settings.db_connect_timeout)
            except Exception:
                log.warning("queue.listen.connect_failed", retry_in=delay, exc_info=True)
                await asyncio.sleep(delay)
                delay = min(LISTEN_RECONNECT_MAX, delay * 2)
                continue
            delay = 0.5
            lost = asyncio.Event()
            try:
                connection.add_termination_listener(lambda _c, lost=lost: lost.set())
                await connection.add_listener(NOTIFY_CHANNEL, lambda *_args: self._wake.set())
                self._wake.set()  # whatever was enqueued while not listening
                await lost.wait()
                log.warning("queue.listen.lost")
            finally:
                with contextlib.suppress(Exception):
                    await connection.close(timeout=1)


class InProcessWorker:
    """A worker inside the API process (embedded mode), on its own connection pool so
    a burst of jobs cannot take the connections requests need."""

    def __init__(self, worker: Worker, task: asyncio.Task[None]) -> None:
        self.worker = worker
        self._task = task

    @classmethod
    def start(cls, resources: Resources, tasks: Registry = registry) -> InProcessWorker:
        own = replace(resources, db=Database.from_settings(resources.settings))
        worker = Worker(own, tasks=tasks)
        return cls(worker, asyncio.create_task(worker.run(), name="queue.worker"))

    async def stop(self) -> None:
        self.worker.stop()
        try:
            await self._task
        finally:
            await self.worker.db.dispose()


async def drain(resources: Resources, *, now: datetime | None = None, tasks: Registry = registry) -> int:
    """Run every job due at ``now`` in this process until none is left; how many ran.

    For tests and one-off maintenance: no leases are renewed, so handlers should be quick.
    """
    owner = f"drain:{worker_name()}"
    ran = 0
    while True:
        clock = now or utcnow()
        async with resources.db.writer() as session:
            claimed = await claim(session, owner, limit=50, lease=3600, now=clock)
            await session.commit()
        if not claimed:
            return ran
        for job in claimed:
            context = JobContext(
                job_id=job.id,
                kind=job.kind,
                payload=job.payload,
                attempt=job.attempts,
                max_attempts=job.max_attempts,
                owner_id=job.owner_id,
                resources=resources,
                worker=owner,
                _report_progress=_progress_writer(resources.db),
            )
            try:
                spec = tasks.get(job.kind)
            except UnknownTask:
                spec = None
            outcome = await run_handler(spec, job, context, clock)
            # Progress writes use the real lease owner only inside workers; here the
            # claim's owner is ours.
            async with resources.db.writer() as session:
                await record(session, owner, [outcome], clock, tasks)
                await session.commit()
            ran += 1


def _progress_writer(db: Database) -> Any:
    async def write(job_id: uuid.UUID, percent: int) -> None:
        async with db.writer() as session:
            await session.execute(
                update(Job)
                .where(Job.id == job_id, Job.status == _RUNNING)
                .values(progress=percent)
                .execution_options(synchronize_session=False)
            )
            await session.commit()

    return write
