"""Database access: engine, request-owned sessions, declarative base, migrations."""

from keel.platform.db.base import Base, IdMixin, TimestampMixin
from keel.platform.db.session import SessionDep, after_commit

__all__ = ["Base", "IdMixin", "SessionDep", "TimestampMixin", "after_commit"]
