"""Periodic cleanup of sign-in state that can no longer be used."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import delete

from keel.auth.models import AuthSession, LoginThrottle
from keel.platform.db.base import utcnow
from keel.platform.queue import JobContext, task

PURGE_TASK = "auth.purge_expired"
# Kept a day past expiry, so a late refresh attempt still finds the family and gets
# "expired" rather than "unknown" in the audit trail.
_GRACE = timedelta(days=1)


@task(PURGE_TASK, max_attempts=3, timeout=600.0)
async def purge_expired(ctx: JobContext) -> dict[str, Any]:
    """Delete expired sessions (their refresh tokens go with them) and stale throttles."""
    now = utcnow()
    window = timedelta(minutes=ctx.resources.settings.lockout_window_minutes)
    async with ctx.transaction() as session:
        sessions = await session.execute(delete(AuthSession).where(AuthSession.expires_at < now - _GRACE))
        throttles = await session.execute(
            delete(LoginThrottle).where(
                LoginThrottle.window_started_at < now - window,
                (LoginThrottle.locked_until.is_(None)) | (LoginThrottle.locked_until < now),
            )
        )
    return {"sessions": sessions.rowcount, "throttles": throttles.rowcount}  # type: ignore[attr-defined]
