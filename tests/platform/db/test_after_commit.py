"""after_commit: once, on the real commit — not at a savepoint, never after a rollback."""

from __future__ import annotations

from sqlalchemy import text

from keel.platform.db.engine import Database
from keel.platform.db.session import after_commit


async def test_runs_once_when_the_transaction_commits_not_at_a_savepoint(db: Database) -> None:
    calls: list[str] = []
    async with db.sessionmaker() as session:
        await session.execute(text("SELECT 1"))
        after_commit(session, lambda: calls.append("done"))
        async with session.begin_nested():
            await session.execute(text("SELECT 1"))
        assert calls == []  # a savepoint released is not a commit
        await session.commit()
        assert calls == ["done"]
        await session.execute(text("SELECT 1"))
        await session.commit()
    assert calls == ["done"]


async def test_never_runs_after_a_rollback(db: Database) -> None:
    calls: list[str] = []
    async with db.sessionmaker() as session:
        await session.execute(text("SELECT 1"))
        after_commit(session, lambda: calls.append("done"))
        await session.rollback()
        # The same session's next transaction commits: not the one the callback was for.
        await session.execute(text("SELECT 1"))
        await session.commit()
    assert calls == []
