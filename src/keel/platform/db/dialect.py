"""INSERT … ON CONFLICT, which SQLAlchemy builds per dialect."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession


def insert_for(session: AsyncSession, model: Any) -> Any:
    """An ``insert(model)`` with ``on_conflict_do_nothing`` / ``on_conflict_do_update``
    for the session's database (PostgreSQL or SQLite; their APIs are the same)."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(model)
    return sqlite.insert(model)
