"""Task handlers registered by name, and periodic tasks.

Domains declare theirs in their ``tasks.py`` with :func:`task` / :func:`periodic`;
``keel.tasks`` imports every one of those modules so a worker knows them all.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from keel.platform.queue.context import JobContext
    from keel.platform.queue.models import Job

Handler = Callable[["JobContext"], Awaitable[Any]]
# Called in the transaction that records how a user's job ended (owner_id set).
FinishedHook = Callable[["AsyncSession", "Job"], Awaitable[None]]

DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_TIMEOUT_SECONDS = 300.0


@dataclass(frozen=True, slots=True)
class TaskSpec:
    name: str
    handler: Handler
    max_attempts: int
    timeout: float
    # Backoff between attempts: base * 2**(attempt - 1), capped, with jitter.
    backoff_base: float
    backoff_max: float


@dataclass(frozen=True, slots=True)
class PeriodicSpec:
    task: str
    every: timedelta


class UnknownTask(LookupError):
    pass


class Registry:
    def __init__(self) -> None:
        self.tasks: dict[str, TaskSpec] = {}
        self.periodic: dict[str, PeriodicSpec] = {}
        self.finished_hooks: list[FinishedHook] = []
        self.stopped_hooks: list[Callable[[], Awaitable[None]]] = []

    def task(
        self,
        name: str,
        *,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        backoff_base: float = 2.0,
        backoff_max: float = 3600.0,
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            if name in self.tasks and self.tasks[name].handler is not handler:
                raise ValueError(f"task {name!r} is registered twice")
            self.tasks[name] = TaskSpec(name, handler, max_attempts, timeout, backoff_base, backoff_max)
            return handler

        return register

    def every(self, interval: timedelta, task: str) -> None:
        """Run ``task`` (already registered) once per ``interval`` across all workers."""
        if task not in self.tasks:
            raise UnknownTask(task)
        self.periodic[task] = PeriodicSpec(task, interval)

    def on_finished(self, hook: FinishedHook) -> FinishedHook:
        """Register ``hook`` to run when a user's job ends for good (not on a retry)."""
        if hook not in self.finished_hooks:
            self.finished_hooks.append(hook)
        return hook

    def on_worker_stopped(self, hook: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
        """Register ``hook`` to run when a worker stops (to close what handlers opened)."""
        if hook not in self.stopped_hooks:
            self.stopped_hooks.append(hook)
        return hook

    def get(self, name: str) -> TaskSpec:
        try:
            return self.tasks[name]
        except KeyError:
            raise UnknownTask(name) from None


# The process-wide registry the domains' tasks.py modules fill.
registry = Registry()
task = registry.task
