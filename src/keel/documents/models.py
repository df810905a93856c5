"""Documents, their chunks, and the full-text indexes over chunks and products.

Chunks have an integer key (not a UUID) so SQLite's FTS5 can use it as the rowid of its
external-content index; the PostgreSQL index is a GIN over a ``tsvector`` computed from
the text with the ``keel_search`` configuration (``unaccent`` then English stemming).
Both are created by migrations (0007 for chunks, 0008 for products), outside the ORM metadata.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from keel.platform.db import Base, IdMixin, TimestampMixin

# INTEGER PRIMARY KEY is SQLite's rowid alias (BIGINT would not be); 64 bits on PostgreSQL.
ChunkId = BigInteger().with_variant(Integer(), "sqlite")


class Status(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    READY = "ready"
    FAILED = "failed"


class Document(IdMixin, TimestampMixin, Base):
    __tablename__ = "documents"
    __table_args__ = (
        CheckConstraint(f"status IN ({', '.join(repr(s.value) for s in Status)})", name="status"),
        CheckConstraint("size_bytes >= 0", name="size_bytes"),
        CheckConstraint("chunk_count >= 0", name="chunk_count"),
        Index("ix_documents_owner_created", "owner_id", "created_at", "id"),
        Index("ix_documents_product_created", "product_id", "created_at", "id"),
        # Deleting the last document of a hash deletes the stored file.
        Index("ix_documents_sha256", "sha256"),
    )

    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    # Who may see it follows the product's sharing; unattached, only its owner (and admins).
    product_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("products.id", ondelete="CASCADE"), default=None
    )
    title: Mapped[str] = mapped_column(String(200))
    filename: Mapped[str] = mapped_column(String(255))
    media_type: Mapped[str] = mapped_column(String(100))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default=Status.PENDING.value)
    error: Mapped[str | None] = mapped_column(String(500), default=None)
    text_chars: Mapped[int | None] = mapped_column(Integer, default=None)
    chunk_count: Mapped[int] = mapped_column(Integer, default=0)
    webhook_url: Mapped[str | None] = mapped_column(String(2048), default=None)
    job_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    processed_at: Mapped[datetime | None] = mapped_column(default=None)
    version: Mapped[int] = mapped_column(Integer, default=1)


class DocumentChunk(Base):
    __tablename__ = "document_chunks"
    __table_args__ = (UniqueConstraint("document_id", "index"),)

    id: Mapped[int] = mapped_column(ChunkId, primary_key=True, autoincrement=True)
    document_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"))
    index: Mapped[int] = mapped_column(Integer)
    start_char: Mapped[int] = mapped_column(Integer)
    end_char: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
