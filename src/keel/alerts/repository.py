"""Queries over alerts and the rule timers."""

from __future__ import annotations

import uuid
from collections.abc import Collection

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from keel.alerts.models import Alert, AlertRuleState, AlertStatus, Severity


async def search(
    session: AsyncSession,
    *,
    status: AlertStatus | None,
    severity: Severity | None,
    limit: int,
    offset: int,
) -> tuple[list[Alert], int]:
    """One page, newest first, and the total over the filters (counted in SQL)."""
    conditions: list[ColumnElement[bool]] = []
    if status is not None:
        conditions.append(Alert.status == status.value)
    if severity is not None:
        conditions.append(Alert.severity == severity.value)
    total = int(
        (await session.execute(select(func.count()).select_from(Alert).where(*conditions))).scalar_one()
    )
    if offset >= total:
        return [], total
    rows = await session.scalars(
        select(Alert)
        .where(*conditions)
        .order_by(Alert.created_at.desc(), Alert.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return list(rows), total


async def get(session: AsyncSession, alert_id: uuid.UUID, *, for_update: bool = False) -> Alert | None:
    statement = select(Alert).where(Alert.id == alert_id)
    if for_update:
        statement = statement.with_for_update()
    return (await session.execute(statement)).scalar_one_or_none()


async def get_many_for_update(
    session: AsyncSession, alert_ids: Collection[uuid.UUID]
) -> dict[uuid.UUID, Alert]:
    rows = await session.scalars(select(Alert).where(Alert.id.in_(alert_ids)).with_for_update())
    return {alert.id: alert for alert in rows}


async def open_alerts(session: AsyncSession) -> dict[str, Alert]:
    """Every open alert by fingerprint, locked until the evaluation commits."""
    rows = await session.scalars(
        select(Alert).where(Alert.status != AlertStatus.RESOLVED.value).with_for_update()
    )
    return {alert.fingerprint: alert for alert in rows}


async def rule_states(session: AsyncSession) -> dict[str, AlertRuleState]:
    rows = await session.scalars(select(AlertRuleState).with_for_update())
    return {state.fingerprint: state for state in rows}


async def forget_state(session: AsyncSession, fingerprint: str) -> None:
    await session.execute(delete(AlertRuleState).where(AlertRuleState.fingerprint == fingerprint))
