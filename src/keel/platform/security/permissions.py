"""Roles and permissions, in one place.

A permission is ``resource:action``. A role grants a set of them; an API key's scopes
can only narrow its owner's set (the effective set is the intersection).
"""

from __future__ import annotations

READ_WRITE_RESOURCES = ("products", "folders", "documents", "webhooks", "jobs")

PERMISSIONS: frozenset[str] = frozenset(
    {
        *(f"{resource}:{action}" for resource in READ_WRITE_RESOURCES for action in ("read", "write")),
        "products:admin",
        "profile:read",
        "profile:write",
        "api_keys:read",
        "api_keys:write",
        "alerts:read",
        "alerts:write",
        "users:read",
        "users:admin",
        "audit:read",
        "cache:admin",
        "metrics:read",
    }
)

_USER = frozenset(
    {
        *(f"{resource}:{action}" for resource in READ_WRITE_RESOURCES for action in ("read", "write")),
        "profile:read",
        "profile:write",
        "api_keys:read",
        "api_keys:write",
    }
)
_GUEST = frozenset({"products:read", "folders:read", "documents:read", "profile:read", "profile:write"})
_MODERATOR = _USER | {"alerts:read", "alerts:write", "users:read", "audit:read", "metrics:read"}

ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    "admin": PERMISSIONS,
    "moderator": frozenset(_MODERATOR),
    "user": _USER,
    "guest": _GUEST,
}


def effective_permissions(role: str, scopes: list[str] | None = None) -> frozenset[str]:
    granted = ROLE_PERMISSIONS.get(role, frozenset())
    return granted if scopes is None else granted & frozenset(scopes)
