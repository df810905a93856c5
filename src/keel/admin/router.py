import uuid
from typing import Annotated

from fastapi import APIRouter, Query
from starlette.responses import Response

from keel.admin import service
from keel.admin.schemas import AdminUserFilters, AdminUserUpdate, Stats
from keel.audit.schemas import AuditLog, AuditLogFilters
from keel.audit.service import RequestMetaDep
from keel.auth.dependencies import AuditRead, UsersAdmin
from keel.platform.db import SessionDep
from keel.platform.http.envelope import Envelope, ok
from keel.platform.http.pagination import PageParamsDep
from keel.platform.http.routing import KeelRoute
from keel.platform.resources import ResourcesDep
from keel.users import admin as users_admin
from keel.users.schemas import User

router = APIRouter(prefix="/api/v2/admin", tags=["admin"], route_class=KeelRoute)


@router.get("/users", response_model=Envelope[list[User]])
async def list_users(
    principal: UsersAdmin,
    session: SessionDep,
    filters: Annotated[AdminUserFilters, Query()],
    params: PageParamsDep,
) -> Response:
    """List accounts, newest first; filter by role, plan, status or a search string."""
    page = (await users_admin.list_accounts(session, principal, filters=filters, params=params)).map(
        User.model_validate
    )
    return page.response()


@router.get("/users/{user_id}", response_model=Envelope[User])
async def get_user(user_id: uuid.UUID, principal: UsersAdmin, session: SessionDep) -> Response:
    """One account (404 if there is none with this id)."""
    return ok(User.model_validate(await users_admin.get_account(session, principal, user_id=user_id)))


@router.patch("/users/{user_id}", response_model=Envelope[User])
async def update_user(
    *,
    user_id: uuid.UUID,
    changes: AdminUserUpdate,
    principal: UsersAdmin,
    session: SessionDep,
    resources: ResourcesDep,
    meta: RequestMetaDep,
) -> Response:
    """Change an account's role, plan or status (409 if it would leave no active admin)."""
    user = await users_admin.update_account(
        session, principal, resources=resources, user_id=user_id, changes=changes, meta=meta
    )
    return ok(User.model_validate(user))


@router.get("/audit-logs", response_model=Envelope[list[AuditLog]])
async def list_audit_logs(
    principal: AuditRead,
    session: SessionDep,
    filters: Annotated[AuditLogFilters, Query()],
    params: PageParamsDep,
) -> Response:
    """Search the audit log, newest first, by account, action, resource type and time."""
    page = (await service.list_audit_logs(session, principal, filters=filters, params=params)).map(
        AuditLog.model_validate
    )
    return page.response()


@router.get("/stats", response_model=Envelope[Stats])
async def get_stats(principal: UsersAdmin, session: SessionDep) -> Response:
    """Account counts and the number of successful and failed logins in the last 24 hours."""
    return ok(await service.stats(session, principal))
