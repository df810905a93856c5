"""Queries over the audit log (reads only: rows are written by ``service.record``)."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from keel.audit.models import AuditLog
from keel.platform.http.pagination import Page, PageParams, paginate


async def search(
    session: AsyncSession,
    params: PageParams,
    *,
    user_id: uuid.UUID | None = None,
    action: str | None = None,
    resource_type: str | None = None,
    occurred_from: datetime | None = None,
    occurred_to: datetime | None = None,
) -> Page[AuditLog]:
    """One page of records, newest first; ``occurred_from`` inclusive, ``occurred_to`` exclusive."""
    conditions: list[ColumnElement[bool]] = []
    if user_id is not None:
        conditions.append(AuditLog.user_id == user_id)
    if action is not None:
        conditions.append(AuditLog.action == action)
    if resource_type is not None:
        conditions.append(AuditLog.resource_type == resource_type)
    if occurred_from is not None:
        conditions.append(AuditLog.occurred_at >= occurred_from)
    if occurred_to is not None:
        conditions.append(AuditLog.occurred_at < occurred_to)
    statement = select(AuditLog).where(*conditions).order_by(AuditLog.occurred_at.desc(), AuditLog.id.desc())
    return await paginate(session, statement, params)


async def count_actions_since(
    session: AsyncSession, actions: Collection[str], since: datetime
) -> dict[str, int]:
    """Records per action at or after ``since`` (served by the (action, occurred_at) index)."""
    result = await session.execute(
        select(AuditLog.action, func.count())
        .where(AuditLog.action.in_(actions), AuditLog.occurred_at >= since)
        .group_by(AuditLog.action)
    )
    counts = dict.fromkeys(actions, 0)
    counts.update({action: int(n) for action, n in result})
    return counts
