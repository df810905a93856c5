"""The audit log: one call, written in the caller's transaction."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from keel.audit.models import AuditLog
from keel.platform.http.context import current_request_id
from keel.platform.security.principal import Principal

Outcome = Literal["success", "failure"]
MAX_USER_AGENT = 255


@dataclass(frozen=True, slots=True)
class RequestMeta:
    """Where a request came from, for the audit trail."""

    ip: str | None
    user_agent: str | None
    request_id: str | None


async def request_meta(request: Request) -> RequestMeta:
    user_agent = request.headers.get("user-agent")
    return RequestMeta(
        ip=request.state.client_ip if hasattr(request.state, "client_ip") else None,
        user_agent=user_agent[:MAX_USER_AGENT] if user_agent else None,
        request_id=current_request_id() or None,
    )


RequestMetaDep = Annotated[RequestMeta, Depends(request_meta)]
SYSTEM = RequestMeta(ip=None, user_agent=None, request_id=None)


def record(
    session: AsyncSession,
    meta: RequestMeta,
    *,
    action: str,
    outcome: Outcome = "success",
    actor: Principal | None = None,
    actor_type: Literal["user", "api_key", "system", "anonymous"] | None = None,
    user_id: uuid.UUID | None = None,
    resource_type: str | None = None,
    resource_id: object | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Add an audit row to the session; it commits (or not) with the change it records."""
    session.add(
        AuditLog(
            actor_type=actor_type or (actor.actor_type if actor else "anonymous"),
            actor_id=actor.actor_id if actor else None,
            user_id=user_id or (actor.user_id if actor else None),
            action=action,
            resource_type=resource_type,
            resource_id=str(resource_id) if resource_id is not None else None,
            outcome=outcome,
            ip=meta.ip,
            user_agent=meta.user_agent,
            request_id=meta.request_id,
            detail=detail or {},
        )
    )
