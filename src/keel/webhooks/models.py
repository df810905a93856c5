"""Webhook subscriptions, their deliveries (one per event and subscription) and every
HTTP attempt of a delivery."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from keel.platform.db import Base, IdMixin, TimestampMixin

# JSONB on PostgreSQL, so the dispatcher's "subscribes to this type or to *" is a
# GIN-indexed containment test.
EventList = JSON().with_variant(JSONB(), "postgresql")


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    # Every attempt failed, or the target was refused, or the receiver said 410 Gone.
    FAILED = "failed"
    # The subscription was disabled before the delivery got through.
    CANCELLED = "cancelled"


class Webhook(IdMixin, TimestampMixin, Base):
    __tablename__ = "webhooks"
    __table_args__ = (
        CheckConstraint("timeout_seconds BETWEEN 1 AND 30", name="timeout_seconds"),
        CheckConstraint("consecutive_failures >= 0", name="consecutive_failures"),
        Index("ix_webhooks_owner_created", "owner_id", "created_at", "id"),
        Index(
            "ix_webhooks_events",
            "events",
            postgresql_using="gin",
            postgresql_ops={"events": "jsonb_path_ops"},
        ).ddl_if(dialect="postgresql"),
    )

    owner_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    url: Mapped[str] = mapped_column(String(2048))
    description: Mapped[str | None] = mapped_column(String(2000), default=None)
    events: Mapped[list[str]] = mapped_column(EventList)
    is_active: Mapped[bool] = mapped_column(default=True)
    # {max_retries, backoff_base, max_backoff}; None: the default schedule.
    retry_policy: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    timeout_seconds: Mapped[int] = mapped_column(Integer, default=10)
    ssl_verify: Mapped[bool] = mapped_column(default=True)
    # Signing secrets, sealed with the service's secret box (AES-GCM, bound to the id):
    # they must be read back to sign, so they cannot be hashed.
    secret: Mapped[str] = mapped_column(String(255))
    previous_secret: Mapped[str | None] = mapped_column(String(255), default=None)
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    # Delivery health: failed attempts in a row (any delivery), since when, and why the
    # subscription was switched off.
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    failing_since: Mapped[datetime | None] = mapped_column(default=None)
    disabled_at: Mapped[datetime | None] = mapped_column(default=None)
    disabled_reason: Mapped[str | None] = mapped_column(String(500), default=None)
    version: Mapped[int] = mapped_column(Integer, default=1)


class WebhookDelivery(IdMixin, TimestampMixin, Base):
    """One event for one subscription. The event's type, time and payload are copied in:
    a redelivery sends the same message whatever the outbox's retention did since."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        # A re-dispatched event does not deliver twice.
        UniqueConstraint("event_id", "webhook_id"),
        CheckConstraint(
            f"status IN ({', '.join(repr(status.value) for status in DeliveryStatus)})", name="status"
        ),
        Index("ix_webhook_deliveries_webhook_created", "webhook_id", "created_at", "id"),
    )

    webhook_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webhooks.id", ondelete="CASCADE"))
    # The `webhook-id` header: the same on every attempt and redelivery.
    event_id: Mapped[uuid.UUID]
    event_type: Mapped[str] = mapped_column(String(64))
    occurred_at: Mapped[datetime]
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.PENDING.value)
    # Bumped by each redelivery: a job of an earlier series finds it changed and stops.
    series: Mapped[int] = mapped_column(Integer, default=1)
    next_attempt_at: Mapped[datetime | None] = mapped_column(default=None)
    last_status_code: Mapped[int | None] = mapped_column(Integer, default=None)
    last_error: Mapped[str | None] = mapped_column(String(500), default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class WebhookAttempt(IdMixin, Base):
    """One HTTP request of a delivery, as it went."""

    __tablename__ = "webhook_delivery_attempts"
    __table_args__ = (UniqueConstraint("delivery_id", "number"),)

    delivery_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webhook_deliveries.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime]
    duration_ms: Mapped[float | None] = mapped_column(Float, default=None)
    status_code: Mapped[int | None] = mapped_column(Integer, default=None)
    error: Mapped[str | None] = mapped_column(String(500), default=None)
    # The first KiB of the receiver's answer, as text.
    response_body: Mapped[str | None] = mapped_column(Text, default=None)
    # When the next attempt was scheduled after this one (None: there was none).
    next_attempt_at: Mapped[datetime | None] = mapped_column(default=None)
