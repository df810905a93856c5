from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Annotated

from pydantic import (
    AfterValidator,
    AwareDatetime,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from keel.platform.db.base import utcnow
from keel.platform.http.envelope import FILLED_LINE_PATTERN, Schema
from keel.platform.security.permissions import PERMISSIONS

MAX_LIFETIME = timedelta(days=730)
KNOWN_PERMISSIONS = sorted(PERMISSIONS)


def _known_permission(value: str) -> str:
    if value not in PERMISSIONS:
        raise PydanticCustomError("unknown_permission", "Unknown permission {scope!r}.", {"scope": value})
    return value


def _unique(scopes: list[str]) -> list[str]:
    # A ValidationError raised here keeps its own locations (pydantic-core prefixes them
    # with the field's), so a repeated scope is reported as `scopes.N`, like an unknown one.
    seen: set[str] = set()
    problems: list[InitErrorDetails] = []
    for index, scope in enumerate(scopes):
        if scope in seen:
            error = PydanticCustomError("duplicate_scope", "Scope {scope!r} is repeated.", {"scope": scope})
            problems.append(InitErrorDetails(type=error, loc=(index,), input=scope))
        seen.add(scope)
    if problems:
        raise ValidationError.from_exception_data("scopes", problems)
    return scopes


def _bounded_expiry(value: datetime) -> datetime:
    now = utcnow()
    if value <= now:
        raise PydanticCustomError("expiry_in_past", "The expiry must be in the future.")
    if value > now + MAX_LIFETIME:
        raise PydanticCustomError(
            "expiry_too_far", "The expiry must be at most {days} days ahead.", {"days": MAX_LIFETIME.days}
        )
    return value


Scope = Annotated[
    str,
    AfterValidator(_known_permission),
    WithJsonSchema({"type": "string", "enum": KNOWN_PERMISSIONS}),
]
KeyName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100, pattern=FILLED_LINE_PATTERN)
]


class ApiKeyCreate(Schema):
    model_config = ConfigDict(extra="forbid")

    name: KeyName = Field(description="A label to recognise the key by, 1..100 characters.")
    scopes: Annotated[list[Scope], AfterValidator(_unique)] = Field(
        min_length=1,
        max_length=len(PERMISSIONS),
        json_schema_extra={"uniqueItems": True},
        description="Permissions the key may use, each at most once. Every scope must be one the "
        "caller holds now (a key cannot exceed its owner, nor the key creating it): asking for "
        "any other is refused with 422, field `scopes.N`. At use time the key gets the owner's "
        "current role permissions narrowed to these scopes.",
    )
    expires_at: Annotated[AwareDatetime, AfterValidator(_bounded_expiry)] | None = Field(
        None,
        description="When the key stops working: a future time with a UTC offset, at most "
        f"{MAX_LIFETIME.days} days ahead. Omitted: the key never expires — unless an API key "
        "creates it, which must then give an expiry no later than its own (when it has one).",
    )


class ApiKey(Schema):
    """An API key as its owner sees it: never the secret, never its hash."""

    id: uuid.UUID = Field(description="Key id (UUIDv7).")
    name: str = Field(description="The key's label.")
    prefix: str = Field(description="The first 12 characters of the secret, to recognise the key by.")
    scopes: list[str] = Field(description="Permissions the key narrows its owner's role to.")
    expires_at: datetime | None = Field(description="When the key stops working; null: never.")
    last_used_at: datetime | None = Field(
        description="Last time the key authenticated a request (updated at most about once a second)."
    )
    revoked_at: datetime | None = Field(description="When the key was revoked; null while it is live.")
    created_at: datetime = Field(description="When the key was created.")


class ApiKeyCreated(ApiKey):
    """A new key with its secret: the only time the secret is ever shown."""

    secret: str = Field(
        description="The key itself (`keel_…`): send it as `X-API-Key` or `Authorization: Bearer`. "
        "Shown once; only its hash is stored."
    )
