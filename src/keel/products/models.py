from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import JSON, BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from keel.platform.db import Base, IdMixin, TimestampMixin

# JSONB on PostgreSQL so `?tag=` is a GIN-indexed containment test.
TagList = JSON().with_variant(JSONB(), "postgresql")
LIVE = text("deleted_at IS NULL")


def _live_index(name: str, *columns: str) -> Index:
    """An index over live (not soft-deleted) products only: every read filters on that."""
    return Index(name, *columns, sqlite_where=LIVE, postgresql_where=LIVE)


class Product(IdMixin, TimestampMixin, Base):
    __tablename__ = "products"
    __table_args__ = (
        CheckConstraint("price_cents >= 0", name="price"),
        CheckConstraint("stock >= 0", name="stock"),
        # Every sort order, per owner (what a user lists) and overall (what an admin lists).
        _live_index("ix_products_owner_created", "owner_id", "created_at", "id"),
        _live_index("ix_products_owner_updated", "owner_id", "updated_at", "id"),
        _live_index("ix_products_owner_name", "owner_id", "name", "id"),
        _live_index("ix_products_owner_price", "owner_id", "price_cents", "id"),
        _live_index("ix_products_owner_stock", "owner_id", "stock", "id"),
        _live_index("ix_products_created", "created_at", "id"),
        _live_index("ix_products_folder_created", "folder_id", "created_at", "id"),
        _live_index("ix_products_category", "category", "id"),
        # PostgreSQL only: `?tag=` as JSONB containment, `?q=` as trigram ILIKE.
        Index(
            "ix_products_tags", "tags", postgresql_using="gin", postgresql_ops={"tags": "jsonb_path_ops"}
        ).ddl_if(dialect="postgresql"),
        Index(
            "ix_products_name_trgm", "name", postgresql_using="gin", postgresql_ops={"name": "gin_trgm_ops"}
        ).ddl_if(dialect="postgresql"),
        Index(
            "ix_products_description_trgm",
            "description",
            postgresql_using="gin",
            postgresql_ops={"description": "gin_trgm_ops"},
        ).ddl_if(dialect="postgresql"),
    )

    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # A deleted folder takes its products out of it (the service soft-deletes or detaches them).
    folder_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("folders.id", ondelete="SET NULL"), default=None
    )
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str | None] = mapped_column(String(2000), default=None)
    # Integer minor units: exact on every backend (SQLite has no decimal type).
    price_cents: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    stock: Mapped[int] = mapped_column(Integer, default=0)
    category: Mapped[str | None] = mapped_column(String(50), default=None)
    tags: Mapped[list[str]] = mapped_column(TagList, default=list)
    version: Mapped[int] = mapped_column(Integer, default=1)
    deleted_at: Mapped[datetime | None] = mapped_column(default=None)
