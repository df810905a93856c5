"""What a handler gets, and how it says "retry later" or "give up"."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from keel.platform.resources import Resources


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
        """Record how far the job got (0..100), visible at ``GET /jobs/{id}``."""
        await self._report_progress(self.job_id, max(0, min(100, int(percent))))

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session whose transaction commits when the block ends without error."""
        async with self.resources.db.writer() as session:
            yield session
            await session.commit()
