"""Alert use cases: list, read, acknowledge, resolve — and the announcement every
transition makes (an ``alert.*`` event and an audit row, in the caller's transaction)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from keel.alerts import repository
from keel.alerts.errors import AlertNotFound, AlertResolved
from keel.alerts.models import Alert, AlertStatus
from keel.alerts.schemas import AcknowledgeFailure, AcknowledgeResult, AlertDetail, AlertFilters
from keel.audit import service as audit
from keel.audit.service import SYSTEM, RequestMeta
from keel.event_types import EventType
from keel.platform import events
from keel.platform.db.base import utcnow
from keel.platform.security.principal import Principal

# Audit actions; an escalation is announced as alert.triggered again (same row).
TRIGGERED = "alert.triggered"
ESCALATED = "alert.escalated"
ACKNOWLEDGED = "alert.acknowledged"
RESOLVED = "alert.resolved"

_EVENTS = {
    TRIGGERED: EventType.ALERT_TRIGGERED,
    ESCALATED: EventType.ALERT_TRIGGERED,
    ACKNOWLEDGED: EventType.ALERT_ACKNOWLEDGED,
    RESOLVED: EventType.ALERT_RESOLVED,
}


def render(alert: Alert) -> AlertDetail:
    return AlertDetail.model_validate(alert)


async def announce(
    session: AsyncSession,
    alert: Alert,
    action: str,
    *,
    principal: Principal | None = None,
    meta: RequestMeta = SYSTEM,
) -> None:
    """The event and the audit row of one transition; ``principal`` None: the system."""
    await session.flush()
    await session.refresh(alert)  # server-side updated_at, so the payload is what is stored
    await events.emit(
        session,
        _EVENTS[action],
        render(alert).model_dump(mode="json"),
        subject_type="alert",
        subject_id=alert.id,
        actor_id=principal.user_id if principal else None,
    )
    audit.record(
        session,
        meta,
        action=action,
        actor=principal,
        actor_type=None if principal else "system",
        resource_type="alert",
        resource_id=alert.id,
        detail={"rule": alert.rule, "severity": alert.severity, "labels": alert.labels},
    )


@dataclass(frozen=True, slots=True)
class AlertPage:
    items: list[Alert]
    total: int


async def list_alerts(session: AsyncSession, principal: Principal, *, filters: AlertFilters) -> AlertPage:
    items, total = await repository.search(
        session, status=filters.status, severity=filters.severity, limit=filters.limit, offset=filters.offset
    )
    return AlertPage(items, total)


async def get_alert(session: AsyncSession, principal: Principal, *, alert_id: uuid.UUID) -> Alert:
    alert = await repository.get(session, alert_id)
    if alert is None:
        raise AlertNotFound(field="alert_id")
    return alert


async def acknowledge(
    session: AsyncSession, principal: Principal, *, alert_ids: list[uuid.UUID], meta: RequestMeta
) -> AcknowledgeResult:
    """Acknowledge each pending alert; the others are reported, not refused."""
    wanted = list(dict.fromkeys(alert_ids))  # each id once, in request order
    found = await repository.get_many_for_update(session, wanted)
    now = utcnow()
    acknowledged: list[uuid.UUID] = []
    failed: list[AcknowledgeFailure] = []
    for alert_id in wanted:
        alert = found.get(alert_id)
        if alert is None:
            failed.append(AcknowledgeFailure(id=alert_id, reason="not_found"))
        elif alert.status == AlertStatus.RESOLVED:
            failed.append(AcknowledgeFailure(id=alert_id, reason="already_resolved"))
        elif alert.status == AlertStatus.ACKNOWLEDGED:
            failed.append(AcknowledgeFailure(id=alert_id, reason="already_acknowledged"))
        else:
            alert.status = AlertStatus.ACKNOWLEDGED.value
            alert.acknowledged_at = now
            alert.acknowledged_by = principal.user_id
            await announce(session, alert, ACKNOWLEDGED, principal=principal, meta=meta)
            acknowledged.append(alert_id)
    return AcknowledgeResult(acknowledged=acknowledged, failed=failed)


async def resolve(
    session: AsyncSession, principal: Principal, *, alert_id: uuid.UUID, meta: RequestMeta
) -> Alert:
    """Resolve an open alert by hand. The series' timers are dropped too: if the
    condition still holds, a new alert opens only after the rule's ``for`` again."""
    alert = await repository.get(session, alert_id, for_update=True)
    if alert is None:
        raise AlertNotFound(field="alert_id")
    if alert.status == AlertStatus.RESOLVED:
        raise AlertResolved()
    alert.status = AlertStatus.RESOLVED.value
    alert.resolved_at = utcnow()
    alert.resolved_by = principal.user_id
    await repository.forget_state(session, alert.fingerprint)
    await announce(session, alert, RESOLVED, principal=principal, meta=meta)
    return alert
