"""The role table: complete, nested as documented, and narrowed by scopes."""

from __future__ import annotations

from keel.platform.security.permissions import PERMISSIONS, ROLE_PERMISSIONS, effective_permissions
from keel.users.models import Role


def test_every_role_has_an_entry_and_nothing_else() -> None:
    assert set(ROLE_PERMISSIONS) == {role.value for role in Role}


def test_roles_grant_only_known_permissions() -> None:
    for granted in ROLE_PERMISSIONS.values():
        assert granted <= PERMISSIONS


def test_roles_nest_guest_user_moderator_admin() -> None:
    guest, user, moderator, admin = (ROLE_PERMISSIONS[r] for r in ("guest", "user", "moderator", "admin"))
    assert guest < user < moderator < admin
    assert admin == PERMISSIONS


def test_only_admins_administer_users() -> None:
    holders = {role for role, granted in ROLE_PERMISSIONS.items() if "users:admin" in granted}
    assert holders == {"admin"}


def test_scopes_narrow_and_never_widen() -> None:
    assert effective_permissions("user", ["products:read"]) == {"products:read"}
    assert effective_permissions("user", ["users:admin", "products:read"]) == {"products:read"}
    assert effective_permissions("user", []) == frozenset()
    assert effective_permissions("guest", None) == ROLE_PERMISSIONS["guest"]


def test_unknown_role_has_no_permissions() -> None:
    assert effective_permissions("root") == frozenset()
