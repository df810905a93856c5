from __future__ import annotations

import uuid

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from keel.platform.db import Base, IdMixin, TimestampMixin

MAX_DEPTH = 10


class Folder(IdMixin, TimestampMixin, Base):
    __tablename__ = "folders"
    __table_args__ = (
        CheckConstraint(f"depth BETWEEN 1 AND {MAX_DEPTH}", name="depth"),
        Index("ix_folders_owner_name", "owner_id", "name", "id"),
        Index("ix_folders_owner_created", "owner_id", "created_at", "id"),
    )

    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # Deleting a folder deletes its sub-folders (the service checks they may go first).
    parent_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("folders.id", ondelete="CASCADE"), index=True, default=None
    )
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str | None] = mapped_column(String(2000), default=None)
    # 1 for a top-level folder; kept so depth limits need no recursive query.
    depth: Mapped[int] = mapped_column(Integer, default=1)
    # Bumped in the same UPDATE as every change: the ETag, and optimistic concurrency.
    version: Mapped[int] = mapped_column(Integer, default=1)


class FolderPath(Base):
    """Closure table: one row per (ancestor, descendant) pair, including each folder
    with itself at distance 0. "Is X inside a folder shared with me" becomes one
    indexed join instead of a recursive query, on SQLite and PostgreSQL alike."""

    __tablename__ = "folder_paths"
    __table_args__ = (Index("ix_folder_paths_descendant", "descendant_id", "ancestor_id"),)

    ancestor_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("folders.id", ondelete="CASCADE"), primary_key=True
    )
    descendant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("folders.id", ondelete="CASCADE"), primary_key=True
    )
    distance: Mapped[int] = mapped_column(Integer)
