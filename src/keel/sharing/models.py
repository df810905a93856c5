from __future__ import annotations

import uuid
from enum import IntEnum

from sqlalchemy import CheckConstraint, ForeignKey, SmallInteger, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from keel.platform.db import Base, IdMixin, TimestampMixin


class Level(IntEnum):
    """Access levels, ordered: each includes the ones below it."""

    NONE = 0
    VIEWER = 1  # read
    EDITOR = 2  # read, write
    OWNER = 3  # read, write, share, delete


_LEVEL_CHECK = "level BETWEEN 1 AND 3"


class FolderGrant(IdMixin, TimestampMixin, Base):
    """Access to a folder, its sub-folders and every product in them."""

    __tablename__ = "folder_grants"
    __table_args__ = (
        UniqueConstraint("user_id", "folder_id"),
        CheckConstraint(_LEVEL_CHECK, name="level"),
    )

    folder_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("folders.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    level: Mapped[int] = mapped_column(SmallInteger)
    granted_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )


class ProductGrant(IdMixin, TimestampMixin, Base):
    """Access to one product."""

    __tablename__ = "product_grants"
    __table_args__ = (
        UniqueConstraint("user_id", "product_id"),
        CheckConstraint(_LEVEL_CHECK, name="level"),
    )

    product_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    level: Mapped[int] = mapped_column(SmallInteger)
    granted_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
