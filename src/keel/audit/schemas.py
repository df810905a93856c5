from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BeforeValidator, Field, StringConstraints

from keel.platform.http.envelope import Schema

# Dotted names such as `auth.login.failed`; the pattern also keeps control characters
# (PostgreSQL refuses NUL in text) out of the query.
Name = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def _rfc3339(value: Any) -> Any:
    """Only RFC 3339 text (pydantic alone also takes Unix timestamps such as ``0.5``)."""
    if isinstance(value, str):
        match = _RFC3339.match(value)
        if match is None:
            raise ValueError("must be an RFC 3339 date-time with an offset, e.g. 2026-01-20T10:30:00Z")
        # A leap second (23:59:60) is valid RFC 3339; Python has no such second.
        if match.group(1) == "60":
            return value[: match.start(1)] + "59" + value[match.end(1) :]
    return value


def _utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:  # year 1 or 9999 with an offset: beyond what a datetime holds
        return (
            datetime.max.replace(tzinfo=UTC)
            if value.year == datetime.max.year
            else datetime.min.replace(tzinfo=UTC)
        )


Instant = Annotated[AwareDatetime, BeforeValidator(_rfc3339), AfterValidator(_utc)]


class AuditLog(Schema):
    """One audit record: who did what, to what, from where, and how it ended."""

    id: uuid.UUID = Field(description="Record id (UUIDv7, time-ordered).")
    occurred_at: datetime = Field(description="When it happened (UTC).")
    actor_type: str = Field(description="user | api_key | system | anonymous")
    actor_id: str | None = Field(description="The acting user's or API key's id; null for system/anonymous.")
    user_id: uuid.UUID | None = Field(
        description="The account the action concerns (the actor, or the target of an admin change)."
    )
    action: str = Field(description="Dotted action name, e.g. `auth.login.failed`, `admin.user.updated`.")
    resource_type: str | None = Field(description="Kind of the affected resource, e.g. `user`, `session`.")
    resource_id: str | None = Field(description="Id of the affected resource.")
    outcome: str = Field(description="success | failure")
    ip: str | None = Field(description="Client IP address, when the action came from a request.")
    user_agent: str | None = Field(description="Client User-Agent (truncated to 255 characters).")
    request_id: str | None = Field(description="Request id (the X-Request-ID of the request).")
    detail: dict[str, Any] = Field(description="Action-specific details.")


class AuditLogFilters(Schema):
    """Query parameters of ``GET /admin/audit-logs`` (all optional, combined with AND)."""

    user_id: uuid.UUID | None = Field(None, description="Only records concerning this account.")
    action: Name | None = Field(None, description="Exact action name, e.g. `auth.login.failed`.")
    resource_type: Name | None = Field(None, description="Exact resource type, e.g. `user`.")
    from_: Instant | None = Field(
        None, alias="from", description="Only records at or after this instant (RFC 3339 with offset)."
    )
    # A `to` before `from` is an empty window (no records), not an error.
    to: Instant | None = Field(None, description="Only records before this instant (RFC 3339 with offset).")
