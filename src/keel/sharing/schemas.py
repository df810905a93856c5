from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import ConfigDict, EmailStr, Field, model_validator

from keel.platform.http.envelope import Schema
from keel.sharing.models import Level

LevelName = Literal["viewer", "editor", "owner"]
LEVELS: dict[str, Level] = {"viewer": Level.VIEWER, "editor": Level.EDITOR, "owner": Level.OWNER}
LEVEL_NAMES: dict[int, LevelName] = {1: "viewer", 2: "editor", 3: "owner"}


class GrantCreate(Schema):
    """Share with one user, named by id or by e-mail (exactly one of them). Sharing again
    with the same user changes their level."""

    model_config = ConfigDict(extra="forbid")

    user_id: uuid.UUID | None = Field(None, description="The user to share with.")
    email: EmailStr | None = Field(None, max_length=254, description="Or their e-mail address.")
    level: LevelName = Field(
        description="viewer: read; editor: read and change; owner: also share and delete."
    )

    @model_validator(mode="after")
    def _one_target(self) -> GrantCreate:
        if (self.user_id is None) == (self.email is None):
            raise ValueError("give exactly one of user_id and email")
        return self


class Grant(Schema):
    """Someone's access to a folder or product, other than the owner's own."""

    user_id: uuid.UUID = Field(description="Who has access.")
    email: str = Field(description="Their e-mail address.")
    full_name: str = Field(description="Their name.")
    level: LevelName = Field(description="viewer | editor | owner")
    granted_by: uuid.UUID | None = Field(description="Who shared it (null if that account is gone).")
    created_at: datetime = Field(description="When access was first granted.")
    updated_at: datetime = Field(description="When the level last changed.")
