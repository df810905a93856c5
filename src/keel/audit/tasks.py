"""Audit retention: entries older than ``KEEL_AUDIT_RETENTION_DAYS`` are deleted."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import delete

from keel.audit.models import AuditLog
from keel.platform.db.base import utcnow
from keel.platform.queue import JobContext, task

RETENTION_TASK = "audit.retention"


@task(RETENTION_TASK, max_attempts=3, timeout=600.0)
async def apply_retention(ctx: JobContext) -> dict[str, Any]:
    cutoff = utcnow() - timedelta(days=ctx.resources.settings.audit_retention_days)
    async with ctx.transaction() as session:
        result = await session.execute(delete(AuditLog).where(AuditLog.occurred_at < cutoff))
    return {"deleted": result.rowcount}  # type: ignore[attr-defined]
