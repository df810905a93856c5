from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from keel.event_types import DESCRIPTIONS, EventType
from keel.platform.http.envelope import (
    FILLED_LINE_PATTERN,
    LINE_PATTERN,
    TEXT_PATTERN,
    Schema,
    not_null_in_schema,
)
from keel.webhooks.models import DeliveryStatus

WILDCARD = "*"
MAX_EVENTS = 50
DEFAULT_TIMEOUT_SECONDS = 10
EVENT_NAMES = (*(event.value for event in EventType), WILDCARD)

Name = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100, pattern=FILLED_LINE_PATTERN)
]
Description = Annotated[str, StringConstraints(max_length=2000, pattern=TEXT_PATTERN)]
Url = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=2048, pattern=r"^[^\x00-\x20\x7f]*$"),
]


def _known_event(name: str) -> str:
    if name not in EVENT_NAMES:
        raise PydanticCustomError(
            "event_type", "{name!r} is not an event type (see the catalogue) or '*'.", {"name": name}
        )
    return name


EventName = Annotated[
    str, AfterValidator(_known_event), WithJsonSchema({"type": "string", "enum": list(EVENT_NAMES)})
]


def _distinct(names: list[str]) -> list[str]:
    if len(set(names)) != len(names):
        raise PydanticCustomError("unique_items", "Each event type may appear once.")
    return names


Events = Annotated[
    list[EventName],
    Field(min_length=1, max_length=MAX_EVENTS, json_schema_extra={"uniqueItems": True}),
    AfterValidator(_distinct),
]
Timeout = Annotated[int, Field(ge=1, le=30)]


class RetryPolicy(Schema):
    """Retries after a failed attempt: the n-th waits ``min(max_backoff, backoff_base *
    2**(n-1))`` seconds, ±10% jitter."""

    model_config = ConfigDict(extra="forbid")

    max_retries: int = Field(7, ge=0, le=20, description="Retries after the first attempt (0..20).")
    backoff_base: float = Field(5.0, ge=1, le=86_400, description="Seconds before the first retry.")
    max_backoff: float = Field(36_000.0, ge=1, le=86_400, description="Longest wait between two attempts.")

    @model_validator(mode="after")
    def _not_below_base(self) -> RetryPolicy:
        if self.max_backoff < self.backoff_base:
            raise PydanticCustomError("max_backoff", "max_backoff must be at least backoff_base.")
        return self


RETRY_POLICY_DOC = (
    "Null: the default schedule — retries 5 s, 5 min, 30 min, 2 h, 5 h, 10 h and 10 h after "
    "each failure (8 attempts over about 28 hours), ±10% jitter."
)
EVENTS_DOC = "1..50 distinct event types, or `*` for all of them. The catalogue:\n\n" + "\n".join(
    f"- `{event.value}`: {DESCRIPTIONS[event]}" for event in EventType
)


class WebhookCreate(Schema):
    """A new subscription, or (``PUT``) the whole of an existing one: omitted optional fields
    take their defaults."""

    model_config = ConfigDict(extra="forbid")

    name: Name = Field(description="1..100 characters.")
    url: Url = Field(
        description="Where deliveries are POSTed: https (http outside production), at most 2,048 "
        "characters, resolving to public addresses only."
    )
    description: Description | None = Field(None, description="Up to 2,000 characters.")
    events: Events = Field(description=EVENTS_DOC)
    is_active: bool = Field(True, description="false pauses deliveries; true re-enables a disabled webhook.")
    retry_policy: RetryPolicy | None = Field(None, description=RETRY_POLICY_DOC)
    timeout_seconds: Timeout = Field(
        DEFAULT_TIMEOUT_SECONDS, description="How long the receiver has to answer (1..30)."
    )
    ssl_verify: bool = Field(True, description="Verify the receiver's TLS certificate.")


class WebhookUpdate(Schema):
    """A partial change: only the fields sent change. ``null`` clears `description` and
    `retry_policy`; the other fields cannot be null."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = Field(None, json_schema_extra=not_null_in_schema, description="1..100 characters.")
    url: Url | None = Field(None, json_schema_extra=not_null_in_schema, description="See WebhookCreate.")
    description: Description | None = Field(None, description="Up to 2,000 characters; null clears it.")
    events: Events | None = Field(None, json_schema_extra=not_null_in_schema, description=EVENTS_DOC)
    is_active: bool | None = Field(
        None, json_schema_extra=not_null_in_schema, description="Pause (false) or re-enable (true)."
    )
    retry_policy: RetryPolicy | None = Field(None, description="Null: the default schedule.")
    timeout_seconds: Timeout | None = Field(
        None, json_schema_extra=not_null_in_schema, description="Seconds (1..30)."
    )
    ssl_verify: bool | None = Field(None, json_schema_extra=not_null_in_schema, description="Verify TLS.")

    @field_validator("name", "url", "events", "is_active", "timeout_seconds", "ssl_verify")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("must not be null; omit the field to leave it unchanged")
        return value


class Webhook(Schema):
    """A subscription as the API shows it (never with its secret)."""

    id: uuid.UUID = Field(description="Webhook id (UUIDv7).")
    name: str = Field(description="Name.")
    url: str = Field(description="Where deliveries are POSTed.")
    description: str | None = Field(description="Free text.")
    events: list[str] = Field(description="Event types delivered (`*`: all).")
    is_active: bool = Field(description="false: no deliveries (paused by you, or disabled; see below).")
    retry_policy: RetryPolicy | None = Field(description=RETRY_POLICY_DOC)
    timeout_seconds: int = Field(description="Seconds the receiver has to answer.")
    ssl_verify: bool = Field(description="Whether the receiver's TLS certificate is verified.")
    consecutive_failures: int = Field(description="Failed attempts in a row; a success resets it.")
    failing_since: datetime | None = Field(description="When the current run of failures began.")
    disabled_at: datetime | None = Field(description="When the webhook was disabled, if it is.")
    disabled_reason: str | None = Field(
        description="Why it was disabled (by you, a 410 Gone, or too many failures)."
    )
    previous_secret_expires_at: datetime | None = Field(
        description="After a rotation: until when the previous secret also signs deliveries."
    )
    owner_id: uuid.UUID = Field(description="The user who owns the webhook.")
    version: int = Field(description="Incremented by every change; the ETag is derived from it.")
    created_at: datetime = Field(description="When the webhook was created.")
    updated_at: datetime = Field(description="When it last changed.")


class WebhookWithSecret(Webhook):
    """A subscription with its signing secret: returned once, at creation and rotation."""

    secret: str = Field(
        description="The signing secret (`whsec_…`, Standard Webhooks). Store it now: it is never "
        "shown again."
    )


class DeliveryAttempt(Schema):
    """One HTTP request of a delivery."""

    number: int = Field(description="1 for the first attempt; redeliveries continue the count.")
    started_at: datetime = Field(description="When the request was sent.")
    duration_ms: float | None = Field(description="How long until the answer (or the error).")
    status_code: int | None = Field(description="The receiver's HTTP status, if it answered.")
    error: str | None = Field(description="Why the attempt failed, if it did.")
    response_body: str | None = Field(description="The first KiB of the receiver's answer.")
    next_attempt_at: datetime | None = Field(description="When a retry was scheduled after this attempt.")


class Delivery(Schema):
    """One event delivered (or being delivered) to one webhook."""

    id: uuid.UUID = Field(description="Delivery id.")
    webhook_id: uuid.UUID = Field(description="The webhook.")
    event_id: uuid.UUID = Field(description="The `webhook-id` header: the same on every attempt.")
    event_type: str = Field(description="The event type.")
    occurred_at: datetime = Field(description="When the event happened (the body's `timestamp`).")
    payload: dict[str, Any] = Field(description="The body's `data`.")
    status: DeliveryStatus = Field(description="pending | succeeded | failed | cancelled.")
    attempt_count: int = Field(description="Attempts so far.")
    next_attempt_at: datetime | None = Field(description="When the next attempt is due, while pending.")
    last_status_code: int | None = Field(description="Status code of the latest attempt, if any.")
    last_error: str | None = Field(description="Why it failed or was cancelled.")
    created_at: datetime = Field(description="When the delivery was created.")
    finished_at: datetime | None = Field(description="When it succeeded, failed or was cancelled.")
    attempts: list[DeliveryAttempt] = Field(description="Every attempt, oldest first.")


class DeliveryFilters(Schema):
    status: Literal["pending", "succeeded", "failed", "cancelled"] | None = Field(
        None, description="Only deliveries in this state."
    )
    event_type: (
        Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=LINE_PATTERN)] | None
    ) = Field(None, description="Only deliveries of this event type.")
