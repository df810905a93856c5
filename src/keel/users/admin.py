"""Accounts as admins see and change them: listing, role/plan/status changes, counts.

Rule kept here: there is always at least one active admin. The check and the change
happen in one transaction with the active admins' rows locked (PostgreSQL); SQLite
runs writing requests one at a time (``BEGIN IMMEDIATE``), which gives the same.
"""

from __future__ import annotations

import uuid
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from keel.admin.schemas import AdminUserFilters, AdminUserUpdate, UserStats
from keel.audit import service as audit
from keel.audit.service import RequestMeta
from keel.auth import service as auth_service
from keel.platform.caching import invalidate_on_commit, viewer_tag
from keel.platform.db import after_commit
from keel.platform.http.errors import Conflict, NotFound
from keel.platform.http.pagination import Page, PageParams
from keel.platform.resources import Resources
from keel.platform.security.principal import Principal
from keel.users import repository
from keel.users.models import Plan, Role, User

log = structlog.get_logger("keel.users")


async def list_accounts(
    session: AsyncSession, principal: Principal, *, filters: AdminUserFilters, params: PageParams
) -> Page[User]:
    return await repository.search(
        session,
        params,
        role=filters.role.value if filters.role else None,
        plan=filters.plan.value if filters.plan else None,
        is_active=filters.is_active,
        q=filters.q,
    )


async def get_account(session: AsyncSession, principal: Principal, *, user_id: uuid.UUID) -> User:
    user = await repository.get(session, user_id)
    if user is None:
        raise NotFound("No such user.")
    return user


def _is_active_admin(role: str, is_active: bool) -> bool:
    return role == Role.ADMIN.value and is_active


async def update_account(
    session: AsyncSession,
    principal: Principal,
    *,
    resources: Resources,
    user_id: uuid.UUID,
    changes: AdminUserUpdate,
    meta: RequestMeta,
) -> User:
    """Change role, plan or status; 409 when it would leave no active admin."""
    wanted: dict[str, Any] = changes.model_dump(exclude_unset=True, mode="json")
    demotes = wanted.get("role", Role.ADMIN.value) != Role.ADMIN.value or wanted.get("is_active") is False
    # Lock the admin set before the target row: every transaction that can demote an
    # admin takes its locks in the same order, so two of them wait instead of deadlocking.
    active_admins = await repository.lock_active_admins(session) if demotes else []
    user = await repository.get_for_update(session, user_id)
    if user is None:
        raise NotFound("No such user.")

    diff = {
        name: [getattr(user, name), value] for name, value in wanted.items() if getattr(user, name) != value
    }
    if not diff:
        return user
    role, is_active = wanted.get("role", user.role), wanted.get("is_active", user.is_active)
    other_admins = [admin for admin in active_admins if admin != user.id]
    if (
        _is_active_admin(user.role, user.is_active)
        and not _is_active_admin(role, is_active)
        and not other_admins
    ):
        raise Conflict("This is the last active admin: make another account an admin first.")

    for name, (_old, new) in diff.items():
        setattr(user, name, new)
    await session.flush()

    detail: dict[str, Any] = {"changes": diff}
    if diff.get("is_active") == [True, False]:
        revoked = await auth_service.revoke(session, resources, reason="deactivated", user_id=user.id)
        detail["sessions_revoked"] = len(revoked)
    # Cached principals carry the role, plan and status: drop them all so the change
    # applies to the next request in this process (others follow within the cache
    # period, KEEL_SESSION_CACHE_MS). Admin changes are rare; a refill is one query.
    # After the commit, so no concurrent request re-caches the old state.
    security = resources.security

    def forget() -> None:
        security.sessions.clear()
        security.api_keys.clear()

    after_commit(session, forget)
    # What they may see changes with their role and status: drop their cached views.
    invalidate_on_commit(session, viewer_tag(user.id))
    audit.record(
        session,
        meta,
        action="admin.user.updated",
        actor=principal,
        user_id=user.id,
        resource_type="user",
        resource_id=user.id,
        detail=detail,
    )
    log.info("users.admin.updated", user_id=str(user.id), changes=diff, actor=principal.actor_id)
    return user


async def account_stats(session: AsyncSession, principal: Principal) -> UserStats:
    by_role = dict.fromkeys(Role, 0)
    total = active = 0
    for role, is_active, n in await repository.count_by_role_and_status(session):
        by_role[Role(role)] += n
        total += n
        active += n if is_active else 0
    by_plan = dict.fromkeys(Plan, 0)
    for plan, n in (await repository.count_by_plan(session)).items():
        by_plan[Plan(plan)] = n
    return UserStats(total=total, active=active, by_role=by_role, by_plan=by_plan)
