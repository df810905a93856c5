"""Alerts, and the per-series timers that decide when one opens and when it resolves.

An ``alerts`` row exists once a rule's condition has held for the rule's ``for``; it is
open (``pending`` or ``acknowledged``) until the condition has been false for
``keep_firing_for`` or someone resolves it. ``alert_rule_states`` holds, per series
(rule + labels, i.e. fingerprint), when the condition started holding and when it
stopped: the state the next evaluation needs, in whichever worker it runs.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Float, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from keel.platform.db import Base, IdMixin, TimestampMixin
from keel.platform.db.base import utcnow


class Severity(StrEnum):
    INFO = "INFO"
    WARNING = "WARNING"
    CRITICAL = "CRITICAL"

    @property
    def rank(self) -> int:
        return _RANKS[self]


_RANKS = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}


class AlertStatus(StrEnum):
    # Open and not yet seen by anyone.
    PENDING = "pending"
    # Open; someone is on it.
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


OPEN_SQL = "status != 'resolved'"


class Alert(IdMixin, TimestampMixin, Base):
    __tablename__ = "alerts"
    __table_args__ = (
        CheckConstraint(f"status IN ({', '.join(repr(s.value) for s in AlertStatus)})", name="status"),
        CheckConstraint(f"severity IN ({', '.join(repr(s.value) for s in Severity)})", name="severity"),
        # One open alert per series; a resolved one frees the fingerprint.
        Index(
            "uq_alerts_open_fingerprint",
            "fingerprint",
            unique=True,
            postgresql_where=text(OPEN_SQL),
            sqlite_where=text(OPEN_SQL),
        ),
        # The list: newest first, optionally by status.
        Index("ix_alerts_created", "created_at", "id"),
        Index("ix_alerts_status_created", "status", "created_at", "id"),
    )

    rule: Mapped[str] = mapped_column(String(64))
    # sha256 of the rule and its sorted labels: the series this alert belongs to.
    fingerprint: Mapped[str] = mapped_column(String(64))
    labels: Mapped[dict[str, str]] = mapped_column(JSON)
    severity: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=AlertStatus.PENDING.value)
    summary: Mapped[str] = mapped_column(String(500))
    # What the rule saw at its last evaluation (thresholds, window, counts, …).
    context: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Evaluations that found the condition holding while this alert was open.
    count: Mapped[int] = mapped_column(Integer, default=1)
    last_value: Mapped[float] = mapped_column(Float)
    # When the condition started holding (before ``for`` elapsed), and last held.
    started_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    acknowledged_at: Mapped[datetime | None] = mapped_column(default=None)
    acknowledged_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )
    resolved_at: Mapped[datetime | None] = mapped_column(default=None)
    # None on a resolved alert: the condition cleared (the system resolved it).
    resolved_by: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), default=None
    )


class AlertRuleState(Base):
    """The timers of one series. A row exists while the condition holds (pending or
    firing) or while an open alert waits out ``keep_firing_for``."""

    __tablename__ = "alert_rule_states"

    fingerprint: Mapped[str] = mapped_column(String(64), primary_key=True)
    rule: Mapped[str] = mapped_column(String(64))
    labels: Mapped[dict[str, str]] = mapped_column(JSON)
    # Since when the condition has held without interruption (None: it does not hold).
    breaching_since: Mapped[datetime | None] = mapped_column(default=None)
    # Since when it has been false while an alert stayed open (None: it holds).
    clear_since: Mapped[datetime | None] = mapped_column(default=None)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
