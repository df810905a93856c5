"""What a handler gets, and how it says "retry later" or "give up"."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import orjson
import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from keel.platform.resources import Resources

log = structlog.get_logger("keel.queue")

# The broker channel job progress is announced on (the events stream listens).
JOB_PROGRESS_CHANNEL = "job_progress"


class Retry(Exception):
    """Try again after ``after`` seconds (None: the task's backoff) — counts as an attempt."""

    def __init__(self, message: str, *, after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.after = after


class JobFailed(Exception):
    """The job cannot succeed: it ends ``failed`` at once, with ``message`` as its error."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(slots=True)
class JobContext:
    job_id: uuid.UUID
    kind: str
    payload: dict[str, Any]
    attempt: int
    max_attempts: int
    owner_id: uuid.UUID | None
    resources: Resources
    # The lease owner running it: "<host>:<pid>:<random>".
    worker: str
    _report_progress: Callable[[uuid.UUID, int], Awaitable[None]]

    @property
    def is_last_attempt(self) -> bool:
        return self.attempt >= self.max_attempts

    async def progress(self, percent: int) -> None:
        """Record how far the job got (0..100), visible at ``GET /jobs/{id}``, and tell
        its owner's open events streams (best effort: the record is what counts)."""
        percent = max(0, min(100, int(percent)))
        await self._report_progress(self.job_id, percent)
        if self.owner_id is None:
            return
        message = {"job_id": str(self.job_id), "owner_id": str(self.owner_id), "progress": percent}
        try:
            await self.resources.broker.publish(JOB_PROGRESS_CHANNEL, orjson.dumps(message))
        except Exception:
            log.warning("queue.progress_publish_failed", job_id=str(self.job_id), exc_info=True)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session whose transaction commits when the block ends without error."""
        async with self.resources.db.writer() as session:
            yield session
            await session.commit()
