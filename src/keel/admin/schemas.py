from __future__ import annotations

from typing import Annotated, Any

from pydantic import ConfigDict, Field, StrictBool, StringConstraints, field_validator

from keel.platform.http.envelope import Schema, not_null_in_schema
from keel.users.models import Plan, Role

# No control characters: PostgreSQL refuses NUL in text, and none belongs in a name.
Search = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=100, pattern=r"^[^\x00-\x1f\x7f]*$")
]


class AdminUserFilters(Schema):
    """Query parameters of ``GET /admin/users`` (all optional, combined with AND)."""

    role: Role | None = Field(None, description="Only accounts with this role.")
    plan: Plan | None = Field(None, description="Only accounts on this plan.")
    is_active: bool | None = Field(None, description="Only active (true) or deactivated (false) accounts.")
    q: Search | None = Field(
        None, description="Case-insensitive substring of the e-mail or the full name (≤ 100 characters)."
    )


class AdminUserUpdate(Schema):
    """What an admin may change on an account. Omitted fields stay as they are; any other
    field (e-mail, password, …) is refused with 422."""

    model_config = ConfigDict(extra="forbid")

    role: Role | None = Field(
        None, description="New role: admin | moderator | user | guest.", json_schema_extra=not_null_in_schema
    )
    plan: Plan | None = Field(
        None, description="New plan: free | pro | enterprise.", json_schema_extra=not_null_in_schema
    )
    # Strict: JSON true/false only, never 0/1 or "yes" (the schema says boolean).
    is_active: StrictBool | None = Field(
        None,
        description="false deactivates the account: its sessions end at once, its API keys stop "
        "working and it can no longer log in. true reactivates it.",
        json_schema_extra=not_null_in_schema,
    )

    @field_validator("role", "plan", "is_active")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        # Runs only for values actually sent (defaults are not validated): null is not
        # a way to say "unchanged" — leave the field out for that.
        if value is None:
            raise ValueError("must not be null; omit the field to leave it unchanged")
        return value


class UserStats(Schema):
    total: int = Field(description="Accounts, active or not.")
    active: int = Field(description="Active accounts.")
    by_role: dict[Role, int] = Field(description="Accounts (active or not) per role; every role is present.")
    by_plan: dict[Plan, int] = Field(description="Accounts (active or not) per plan; every plan is present.")


class Stats(Schema):
    users: UserStats = Field(description="Account counts.")
    logins_24h: int = Field(description="Successful logins in the last 24 hours (from the audit log).")
    failed_logins_24h: int = Field(description="Failed logins in the last 24 hours (from the audit log).")
