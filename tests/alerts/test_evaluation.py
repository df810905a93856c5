"""A rule through evaluation on both backends with a fake clock: ``for``, one alert per
breach, escalation on the same row, ``keep_firing_for``, and what each transition writes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from keel.alerts.models import Alert, AlertRuleState, AlertStatus
from keel.audit.models import AuditLog
from keel.platform.db.base import utcnow
from keel.platform.events import Event
from keel.platform.resources import Resources
from tests.alerts.helpers import T0, Gauge, alerts_of, evaluate, gauge_rule

STEP = timedelta(seconds=30)


async def test_for_escalation_keep_firing_for_and_a_new_breach(resources: Resources) -> None:
    gauge = Gauge()
    rule = gauge_rule(gauge, for_=timedelta(minutes=2), keep_firing_for=timedelta(minutes=5))
    now = T0

    async def tick(value: float | None) -> None:
        nonlocal now
        gauge.value = value
        await evaluate(resources, rule, now)
        now += STEP

    await tick(50)  # a blip
    await tick(None)
    assert await alerts_of(resources, rule) == []

    breach_start = now
    for _ in range(4):  # 0:00 .. 1:30 into the breach
        await tick(50)
    assert await alerts_of(resources, rule) == []
    await tick(50)  # 2:00: open
    (alert,) = await alerts_of(resources, rule)
    assert (alert.status, alert.severity, alert.count) == ("pending", "WARNING", 1)
    assert alert.started_at == breach_start

    await tick(50)
    await tick(500)  # escalates, same row
    (escalated,) = await alerts_of(resources, rule)
    assert escalated.id == alert.id
    assert (escalated.severity, escalated.count, escalated.last_value) == ("CRITICAL", 3, 500)

    await tick(None)  # recovering...
    await tick(20)  # ...flaps back: still the same alert, nothing new
    cleared_from = now
    while now < cleared_from + timedelta(minutes=5):
        await tick(None)
        (still_open,) = await alerts_of(resources, rule)
        assert still_open.status == "pending"
        assert (still_open.count, still_open.severity) == (4, "CRITICAL")
    await tick(None)  # 5 minutes false: resolved by the system
    (resolved,) = await alerts_of(resources, rule)
    assert resolved.status == "resolved"
    assert resolved.resolved_at is not None
    assert resolved.resolved_by is None

    for _ in range(5):
        await tick(50)
    alerts = await alerts_of(resources, rule)
    assert len(alerts) == 2
    assert alerts[1].id != alert.id
    assert alerts[1].status == "pending"

    async with resources.db.reader() as session:
        events = (
            await session.execute(
                select(Event.type, Event.subject_id, Event.subject_type)
                .where(Event.subject_id.in_([alert.id, alerts[1].id]))
                .order_by(Event.id)
            )
        ).all()
        audit = (
            await session.execute(
                select(AuditLog.action, AuditLog.actor_type, AuditLog.resource_id)
                .where(AuditLog.resource_id.in_([str(alert.id), str(alerts[1].id)]))
                .order_by(AuditLog.occurred_at, AuditLog.id)
            )
        ).all()
    assert [(t, s) for t, s, _ in events] == [
        ("alert.triggered", alert.id),
        ("alert.triggered", alert.id),
        ("alert.resolved", alert.id),
        ("alert.triggered", alerts[1].id),
    ]
    assert {kind for _, _, kind in events} == {"alert"}
    assert [(a, t) for a, t, _ in audit] == [
        ("alert.triggered", "system"),
        ("alert.escalated", "system"),
        ("alert.resolved", "system"),
        ("alert.triggered", "system"),
    ]


async def test_timers_survive_between_evaluations_in_separate_transactions(resources: Resources) -> None:
    gauge = Gauge()
    rule = gauge_rule(gauge, for_=timedelta(minutes=1), keep_firing_for=timedelta(0))
    gauge.value = 20
    await evaluate(resources, rule, T0)
    async with resources.db.reader() as session:
        state = (
            await session.execute(select(AlertRuleState).where(AlertRuleState.rule == rule.name))
        ).scalar_one()
    assert state.breaching_since == T0
    await evaluate(resources, rule, T0 + timedelta(minutes=1))
    assert len(await alerts_of(resources, rule)) == 1
    gauge.value = None
    await evaluate(resources, rule, T0 + timedelta(minutes=2))
    (alert,) = await alerts_of(resources, rule)
    assert alert.status == "resolved"
    async with resources.db.reader() as session:
        left = (await session.execute(select(AlertRuleState).where(AlertRuleState.rule == rule.name))).all()
    assert left == []


def _alert(fingerprint: str, status: AlertStatus = AlertStatus.PENDING) -> Alert:
    now = utcnow()
    return Alert(
        rule="probe",
        fingerprint=fingerprint,
        labels={},
        severity="WARNING",
        status=status.value,
        summary="probe",
        context={},
        count=1,
        last_value=1.0,
        started_at=now,
        last_seen_at=now,
    )


async def test_one_open_alert_per_fingerprint_is_enforced_by_the_database(resources: Resources) -> None:
    fingerprint = utcnow().isoformat() + "-unique-probe"
    async with resources.db.writer() as session:
        first = _alert(fingerprint)
        session.add(first)
        await session.commit()
    async with resources.db.writer() as session:
        session.add(_alert(fingerprint, AlertStatus.ACKNOWLEDGED))
        with pytest.raises(IntegrityError):
            await session.flush()
        await session.rollback()
    async with resources.db.writer() as session:
        stored = await session.get_one(Alert, first.id)
        stored.status = AlertStatus.RESOLVED.value
        session.add(_alert(fingerprint))
        await session.commit()
    async with resources.db.reader() as session:
        statuses = sorted(
            (await session.scalars(select(Alert.status).where(Alert.fingerprint == fingerprint))).all()
        )
    assert statuses == ["pending", "resolved"]
