"""Admin read models that span domains: the audit trail and the dashboard counts.

Account changes live with the accounts (``keel.users.admin``).
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from keel.admin.schemas import Stats
from keel.audit import repository as audit_repository
from keel.audit.models import AuditLog
from keel.audit.schemas import AuditLogFilters
from keel.auth.service import LOGIN_FAILED, LOGIN_SUCCEEDED
from keel.platform.db.base import utcnow
from keel.platform.http.pagination import Page, PageParams
from keel.platform.security.principal import Principal
from keel.users import admin as users_admin

STATS_WINDOW = timedelta(hours=24)


async def list_audit_logs(
    session: AsyncSession, principal: Principal, *, filters: AuditLogFilters, params: PageParams
) -> Page[AuditLog]:
    return await audit_repository.search(
        session,
        params,
        user_id=filters.user_id,
        action=filters.action,
        resource_type=filters.resource_type,
        occurred_from=filters.from_,
        occurred_to=filters.to,
    )


async def stats(session: AsyncSession, principal: Principal) -> Stats:
    """Three aggregate queries; no rows are loaded."""
    users = await users_admin.account_stats(session, principal)
    logins = await audit_repository.count_actions_since(
        session, (LOGIN_SUCCEEDED, LOGIN_FAILED), utcnow() - STATS_WINDOW
    )
    return Stats(users=users, logins_24h=logins[LOGIN_SUCCEEDED], failed_logins_24h=logins[LOGIN_FAILED])
