from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import ConfigDict, Field

from keel.alerts.models import AlertStatus, Severity
from keel.platform.http.envelope import Schema

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
MAX_ACKNOWLEDGE = 100


class Alert(Schema):
    id: uuid.UUID = Field(description="The alert's id.")
    rule: str = Field(description="The rule that raised it (`route_latency_p95`, `failed_login_burst`, …).")
    fingerprint: str = Field(description="sha256 of the rule and its labels: one open alert per fingerprint.")
    labels: dict[str, str] = Field(
        description="The series: `{method, route}`, `{kind}`, `{webhook_id}`, or `{}`."
    )
    severity: Severity = Field(description="INFO | WARNING | CRITICAL; only ever rises while open.")
    status: AlertStatus = Field(description="pending (open) | acknowledged (open) | resolved.")
    summary: str = Field(description="What is wrong, in a sentence.")
    count: int = Field(description="Evaluations (every 30 s) that found the condition holding while open.")
    last_value: float = Field(
        description="The rule's value at the last sighting (ms, share, count, minutes)."
    )
    started_at: datetime = Field(description="When the condition started holding (before `for` elapsed).")
    last_seen_at: datetime = Field(description="When the condition last held.")
    acknowledged_at: datetime | None = Field(description="When someone acknowledged it, or null.")
    acknowledged_by: uuid.UUID | None = Field(description="Who acknowledged it, or null.")
    resolved_at: datetime | None = Field(description="When it was resolved, or null.")
    resolved_by: uuid.UUID | None = Field(
        description="Who resolved it; null on a resolved alert means its condition cleared."
    )
    created_at: datetime = Field(description="When the alert opened.")
    updated_at: datetime = Field(description="Last change.")


class AlertDetail(Alert):
    context: dict[str, Any] = Field(description="What the rule saw at its last evaluation.")


class AlertFilters(Schema):
    """Query parameters of ``GET /alerts``."""

    status: AlertStatus | None = Field(None, description="Only alerts with this status.")
    severity: Severity | None = Field(None, description="Only alerts with this severity.")
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="Alerts per page (1..100).")
    offset: int = Field(0, ge=0, le=1_000_000, description="Alerts to skip (≥ 0).")


class AcknowledgeRequest(Schema):
    model_config = ConfigDict(extra="forbid")

    alert_ids: list[uuid.UUID] = Field(
        min_length=1, max_length=MAX_ACKNOWLEDGE, description="Alerts to acknowledge (1..100 ids)."
    )


FailureReason = Literal["not_found", "already_acknowledged", "already_resolved"]


class AcknowledgeFailure(Schema):
    id: uuid.UUID = Field(description="An id from the request.")
    reason: FailureReason = Field(description="not_found | already_acknowledged | already_resolved")


class AcknowledgeResult(Schema):
    acknowledged: list[uuid.UUID] = Field(description="Ids acknowledged by this request, in request order.")
    failed: list[AcknowledgeFailure] = Field(description="Ids left as they were, and why.")
