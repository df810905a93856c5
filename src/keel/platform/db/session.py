"""The request owns the transaction: commit when the endpoint returns, roll back on error.

Services only ``flush()``; several of them can write in one request atomically.
"""

from collections.abc import AsyncIterator, Callable
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from keel.platform.caching.invalidation import apply_committed
from keel.platform.http.errors import IdempotencyLeaseLost, KeelError
from keel.platform.http.idempotency_store import RECORD_ID_STATE, mark_committed

_READ_ONLY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def request_session(request: Request) -> AsyncIterator[AsyncSession]:
    db = request.app.state.resources.db
    # Reads: each statement on its own on PostgreSQL (no BEGIN/COMMIT round trips on the
    # hottest requests). Writes: SQLite's write lock taken up front, so a transaction
    # that reads then writes waits its turn instead of failing with SQLITE_BUSY.
    opened = db.reader() if request.method in _READ_ONLY_METHODS else db.writer()
    async with opened as session:
        try:
            yield session
        except KeelError as exc:
            if exc.persist_changes:
                await _commit(session, request)
            else:
                await session.rollback()
            raise
        except BaseException:
            await session.rollback()
            raise
        else:
            await _commit(session, request)


async def _commit(session: AsyncSession, request: Request) -> None:
    record_id = request.scope.get("state", {}).get(RECORD_ID_STATE)
    # A POST with an Idempotency-Key: marking its record in this same transaction makes
    # "the changes are durable" and "never run this request again" one fact.
    if record_id is not None and not await mark_committed(session, record_id):
        await session.rollback()
        raise IdempotencyLeaseLost()
    await session.commit()
    resources = request.app.state.resources
    if request.method not in _READ_ONLY_METHODS:
        # Whatever the write was, counted list totals may now be wrong.
        resources.list_totals.invalidate()
    if resources.cache is not None:
        # Before the response: the writer's next read sees its own write.
        await apply_committed(session, resources.cache)


# scope="function": the commit runs after the endpoint returns and before the response
# is sent, so a failed commit becomes an error response instead of a lost write behind
# a 200.
SessionDep = Annotated[AsyncSession, Depends(request_session, scope="function")]


def after_commit(session: AsyncSession, callback: Callable[[], None]) -> None:
    """Run ``callback`` once the session's current transaction commits; never after a
    rollback, and not when a savepoint inside it is released.

    For side effects on process state that must not run ahead of the database, such
    as dropping a revoked session from a cache: done before the commit, a concurrent
    request could re-read the still-live row and cache it again.
    """
    sync_session = session.sync_session
    transaction = sync_session.get_transaction()
    fired = False

    def run(committed: Session) -> None:
        nonlocal fired
        # SQLAlchemy also sends after_commit when a savepoint is released; and after a
        # rollback, a later transaction's commit is not this one's.
        if fired or committed.get_nested_transaction() is not None:
            return
        if transaction is not None and committed.get_transaction() is not transaction:
            return
        fired = True
        callback()

    event.listen(sync_session, "after_commit", run)
