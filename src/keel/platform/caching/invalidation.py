"""Invalidations that wait for the transaction: buffered on the session, applied after
its commit, dropped with it on rollback.

Applied before the commit, a concurrent read could re-read the old rows and cache them
again; the cache's fill guard covers the reverse race (a read that started before the
commit, storing after the invalidation).

A service calls :func:`invalidate_on_commit`; whoever commits the session (the request
session dependency, a job) then awaits :func:`apply_committed` — SQLAlchemy's
``after_commit`` hook is synchronous and cannot await Redis itself.
"""

from __future__ import annotations

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from keel.platform.caching.base import ResourceCache

_PENDING = "keel.caching.pending"
_COMMITTED = "keel.caching.committed"
_HOOKED = "keel.caching.hooked"


def _promote(session: Session) -> None:
    # SQLAlchemy also fires after_commit when a savepoint (begin_nested) is released;
    # only the outermost commit makes the change visible to other transactions.
    if session.in_nested_transaction():
        return
    pending: set[str] | None = session.info.pop(_PENDING, None)
    if pending:
        session.info.setdefault(_COMMITTED, set()).update(pending)


def invalidate_on_commit(session: AsyncSession, *tags: str) -> None:
    """Drop entries with these tags once ``session``'s transaction commits.

    Tags pending when a transaction rolls back stay pending for the session's next
    commit: an invalidation too many is harmless, one too few is not.
    """
    sync = session.sync_session
    if not sync.info.get(_HOOKED):
        event.listen(sync, "after_commit", _promote)
        sync.info[_HOOKED] = True
    sync.info.setdefault(_PENDING, set()).update(tags)


async def apply_committed(session: AsyncSession, cache: ResourceCache) -> int:
    """Apply the invalidations of the transactions ``session`` has committed; how many
    entries they dropped. Never raises for a cache outage (the cache replays it)."""
    tags: set[str] | None = session.sync_session.info.pop(_COMMITTED, None)
    if not tags:
        return 0
    return await cache.invalidate_tags(*sorted(tags))
