from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import ConfigDict, Field, StringConstraints, field_validator

from keel.platform.http.envelope import (
    FILLED_LINE_PATTERN,
    LINE_PATTERN,
    TEXT_PATTERN,
    Schema,
    not_null_in_schema,
)

Name = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100, pattern=FILLED_LINE_PATTERN)
]
Description = Annotated[str, StringConstraints(max_length=2000, pattern=TEXT_PATTERN)]


class FolderCreate(Schema):
    """A new folder, or (``PUT``) the whole of an existing one."""

    model_config = ConfigDict(extra="forbid")

    name: Name = Field(description="1..100 characters (surrounding spaces are trimmed).")
    description: Description | None = Field(None, description="Up to 2,000 characters.")
    parent_id: uuid.UUID | None = Field(
        None,
        description="Parent folder (you need editor access to it); null for a top-level folder. "
        "Folders nest at most 10 levels; a move into its own subtree is refused with 409.",
    )


class FolderUpdate(Schema):
    """A partial change: only the fields sent change; `parent_id: null` moves to the top level."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = Field(None, json_schema_extra=not_null_in_schema, description="1..100 characters.")
    description: Description | None = Field(None, description="Up to 2,000 characters; null clears it.")
    parent_id: uuid.UUID | None = Field(None, description="New parent; null for the top level.")

    @field_validator("name")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("must not be null; omit the field to leave it unchanged")
        return value


class Folder(Schema):
    id: uuid.UUID = Field(description="Folder id (UUIDv7).")
    name: str = Field(description="Folder name.")
    description: str | None = Field(description="Free text.")
    parent_id: uuid.UUID | None = Field(description="Parent folder; null at the top level.")
    owner_id: uuid.UUID = Field(description="The user who owns the folder.")
    depth: int = Field(description="1 for a top-level folder, up to 10.")
    version: int = Field(description="Incremented by every change; the ETag is derived from it.")
    created_at: datetime = Field(description="When the folder was created.")
    updated_at: datetime = Field(description="When the folder last changed.")


class FolderFilters(Schema):
    """Query filters of ``GET /folders``."""

    parent_id: uuid.UUID | None = Field(None, description="Only the direct sub-folders of this folder.")
    top_level: bool | None = Field(None, description="true: only top-level folders.")
    q: (
        Annotated[str, StringConstraints(strip_whitespace=True, max_length=100, pattern=LINE_PATTERN)] | None
    ) = Field(None, description="Case-insensitive substring of the name.")
