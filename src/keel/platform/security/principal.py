"""Who is calling: a user through a session (JWT) or through one of their API keys."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: uuid.UUID
    role: str
    plan: str
    permissions: frozenset[str]
    session_id: uuid.UUID | None = None
    api_key_id: uuid.UUID | None = None

    @property
    def actor_type(self) -> Literal["user", "api_key"]:
        return "api_key" if self.api_key_id is not None else "user"

    @property
    def actor_id(self) -> str:
        return str(self.api_key_id if self.api_key_id is not None else self.user_id)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def can(self, permission: str) -> bool:
        return permission in self.permissions
