"""Rules and evaluation helpers for the alert tests.

On PostgreSQL the run's database is shared by every module, so each test makes its
rules unique (a random name) and evaluates only those: other modules' data and alerts
never meet its own.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from keel.alerts import evaluation
from keel.alerts.evaluation import Outcome
from keel.alerts.models import Alert, Severity
from keel.alerts.rules import Context, Observation, Rule
from keel.platform.resources import Resources

# Far from the wall clock: no real request, login or job lands near it.
T0 = datetime(2031, 3, 3, 12, 0, tzinfo=UTC)


class Gauge:
    """A value a test sets by hand; ``None`` means the series is not observed."""

    def __init__(self) -> None:
        self.value: float | None = None
        self.labels = {"route": f"/probe/{uuid.uuid4().hex[:8]}"}

    async def observe(self, context: Context, params: Mapping[str, Any]) -> list[Observation]:
        if self.value is None:
            return []
        return [Observation(self.labels, self.value, f"value is {self.value}", {"probe": True})]


def gauge_rule(gauge: Gauge, *, for_: timedelta, keep_firing_for: timedelta) -> Rule:
    return Rule(
        f"probe_{uuid.uuid4().hex[:12]}",
        "A value set by the test.",
        gauge.observe,
        ((Severity.WARNING, 10.0), (Severity.CRITICAL, 100.0)),
        for_=for_,
        keep_firing_for=keep_firing_for,
    )


def unique(rule: Rule) -> Rule:
    """The same rule under a name of its own."""
    return dataclasses.replace(rule, name=f"{rule.name}_{uuid.uuid4().hex[:8]}")


async def evaluate(resources: Resources, rule: Rule, now: datetime) -> Outcome:
    async with resources.db.writer() as session:
        outcome = await evaluation.evaluate(session, now, [rule], stats=resources.stats)
        await session.commit()
    return outcome


async def alerts_of(resources: Resources, rule: Rule) -> list[Alert]:
    async with resources.db.reader() as session:
        rows = await session.scalars(
            select(Alert).where(Alert.rule == rule.name).order_by(Alert.created_at, Alert.id)
        )
        return list(rows)
