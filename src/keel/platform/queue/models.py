"""The job table: one row per unit of background work, and the periodic schedule."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from keel.platform.db.base import Base, IdMixin, utcnow


class Status(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    # The handler said the job cannot succeed (no retry), or an admin gave up on it.
    FAILED = "failed"
    # Every attempt failed; an admin may retry it.
    DEAD = "dead"
    CANCELLED = "cancelled"


ACTIVE = (Status.QUEUED, Status.RUNNING)
FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.DEAD, Status.CANCELLED)

_ACTIVE_SQL = "status IN ('queued', 'running')"


class Job(IdMixin, Base):
    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(f"status IN ({', '.join(repr(s.value) for s in Status)})", name="status"),
        CheckConstraint("progress BETWEEN 0 AND 100", name="progress"),
        # The claim query: queued jobs by priority, then due time.
        Index(
            "ix_jobs_claim",
            text("priority DESC"),
            "run_at",
            postgresql_where=text("status = 'queued'"),
            sqlite_where=text("status = 'queued'"),
        ),
        # The reaper: running jobs by lease expiry.
        Index(
            "ix_jobs_lease",
            "lease_expires_at",
            postgresql_where=text("status = 'running'"),
            sqlite_where=text("status = 'running'"),
        ),
        # At most one live job per dedupe key; a finished one frees the key.
        Index(
            "uq_jobs_dedupe_key",
            "dedupe_key",
            unique=True,
            postgresql_where=text(_ACTIVE_SQL),
            sqlite_where=text(_ACTIVE_SQL),
        ),
        Index("ix_jobs_owner_created", "owner_id", "created_at"),
        Index("ix_jobs_status_finished", "status", "finished_at"),
    )

    kind: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default=Status.QUEUED.value)
    priority: Mapped[int] = mapped_column(default=0)
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int]
    run_at: Mapped[datetime] = mapped_column(default=utcnow)
    dedupe_key: Mapped[str | None] = mapped_column(String(200), default=None)
    # The user the job works for (the jobs API shows a user their own); None for system work.
    owner_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), default=None
    )
    lease_owner: Mapped[str | None] = mapped_column(String(64), default=None)
    lease_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    progress: Mapped[int] = mapped_column(default=0)
    result: Mapped[Any | None] = mapped_column(JSON, default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class Schedule(Base):
    """Which period each periodic task last ran for: claiming a period is one
    compare-and-set UPDATE, so each period runs once whatever the number of workers."""

    __tablename__ = "job_schedules"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    last_period: Mapped[datetime | None] = mapped_column(default=None)
