from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import ConfigDict, Field, StringConstraints

from keel.platform.http.envelope import FILLED_LINE_PATTERN, Schema
from keel.users.models import Plan, Role

# Surrounding spaces are trimmed; the schema says there must be something else.
FullName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100, pattern=FILLED_LINE_PATTERN)
]


class User(Schema):
    """An account as its owner and admins see it (never the password or MFA secret)."""

    id: uuid.UUID = Field(description="Account id (UUIDv7).")
    email: str = Field(description="Login e-mail, lower-cased.")
    full_name: str = Field(description="Display name.")
    role: Role = Field(description="admin | moderator | user | guest")
    plan: Plan = Field(description="free | pro | enterprise")
    is_active: bool = Field(
        description="Inactive accounts cannot log in; their tokens and keys stop working."
    )
    mfa_enabled: bool = Field(description="Whether login requires a one-time code.")
    last_login_at: datetime | None = Field(description="Last successful login.")
    created_at: datetime = Field(description="When the account was created.")
    updated_at: datetime = Field(description="Last change to the account.")


class ProfileUpdate(Schema):
    """Only profile fields. ``email``, ``role``, ``plan`` and ``is_active`` are refused
    (422), not silently ignored, so a client never believes a change happened."""

    model_config = ConfigDict(extra="forbid")

    full_name: FullName | None = Field(None, description="New display name (1..100 characters).")
