"""Evaluating every rule: observe, step each series through the state machine
(:mod:`keel.alerts.engine`), and write what changed — in one transaction.

State across evaluations (so any worker, after any restart, continues where the last
one stopped):

- ``alerts``: the open alert of a series (status ``pending`` or ``acknowledged``), at
  most one per fingerprint, enforced by the partial unique index
  ``uq_alerts_open_fingerprint`` (``WHERE status != 'resolved'``);
- ``alert_rule_states``: per series, ``breaching_since`` (the ``for`` timer, counting
  before any alert exists) and ``clear_since`` (the ``keep_firing_for`` timer of an
  open alert). A row exists only while one of them runs.

Open alerts and timers are read ``FOR UPDATE`` (PostgreSQL), so an acknowledgement or a
manual resolution made during an evaluation waits for it, or it waits for them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from keel.alerts import engine, repository
from keel.alerts.engine import Action, Timers
from keel.alerts.models import Alert, AlertRuleState, AlertStatus, Severity
from keel.alerts.rules import RULES, Context, Observation, Rule
from keel.alerts.service import ESCALATED, RESOLVED, TRIGGERED, announce
from keel.platform.observability.stats_store import StatsStore


def fingerprint(rule: str, labels: dict[str, str]) -> str:
    """sha256 of the rule name and its labels sorted by name."""
    return hashlib.sha256(orjson.dumps([rule, sorted(labels.items())])).hexdigest()


@dataclass(slots=True)
class Outcome:
    """What one evaluation did, per action: the fingerprints concerned."""

    actions: dict[Action, list[str]] = field(default_factory=dict)

    def add(self, action: Action, series: str) -> None:
        self.actions.setdefault(action, []).append(series)

    def count(self, action: Action) -> int:
        return len(self.actions.get(action, []))


async def evaluate(
    session: AsyncSession, now: datetime, rules: Iterable[Rule] = RULES, *, stats: StatsStore
) -> Outcome:
    """Evaluate ``rules`` at ``now`` on the request statistics of ``stats``; the caller
    owns (and commits) the transaction."""
    states = await repository.rule_states(session)
    open_alerts = await repository.open_alerts(session)
    outcome = Outcome()
    # One per evaluation: the request rules share what it reads.
    context = Context(session, now, stats)
    for rule in rules:
        observed = {fingerprint(rule.name, o.labels): o for o in await rule.evaluate(context)}
        series = set(observed)
        series.update(fp for fp, state in states.items() if state.rule == rule.name)
        series.update(fp for fp, alert in open_alerts.items() if alert.rule == rule.name)
        for fp in sorted(series):
            current = Series(rule, fp, observed.get(fp), states.get(fp), open_alerts.get(fp))
            outcome.add(await _advance(session, current, now), fp)
    return outcome


@dataclass(frozen=True, slots=True)
class Series:
    """One rule and label set at this evaluation: what the rule saw (None: the
    condition is false), its stored timers and its open alert."""

    rule: Rule
    fingerprint: str
    observation: Observation | None
    state: AlertRuleState | None
    alert: Alert | None


async def _advance(session: AsyncSession, series: Series, now: datetime) -> Action:
    rule, observation, alert = series.rule, series.observation, series.alert
    severity = rule.classify(observation.value) if observation else None
    state = series.state
    step = engine.step(
        now=now,
        severity=severity,
        timers=Timers(state.breaching_since, state.clear_since) if state else None,
        open_severity=Severity(alert.severity) if alert else None,
        for_=rule.for_,
        keep_firing_for=rule.keep_firing_for,
    )
    # The engine only opens or updates on a sighting, and only updates or resolves an
    # open alert: the None checks below narrow the types, they never skip a step.
    if step.action is Action.OPEN and observation is not None and severity is not None:
        started = step.timers.breaching_since if step.timers else None
        alert = Alert(
            rule=rule.name,
            fingerprint=series.fingerprint,
            labels=observation.labels,
            severity=severity.value,
            status=AlertStatus.PENDING.value,
            summary=observation.summary[:500],
            context=_context(rule, observation),
            count=1,
            last_value=observation.value,
            started_at=started or now,
            last_seen_at=now,
        )
        session.add(alert)
        await announce(session, alert, TRIGGERED)
    elif step.action in (Action.UPDATE, Action.ESCALATE) and alert is not None and observation is not None:
        alert.count += 1
        alert.last_value = observation.value
        alert.last_seen_at = now
        alert.summary = observation.summary[:500]
        alert.context = _context(rule, observation)
        if step.action is Action.ESCALATE and step.severity is not None:
            # A higher severity needs someone's attention again.
            alert.severity = step.severity.value
            alert.status = AlertStatus.PENDING.value
            alert.acknowledged_at = None
            alert.acknowledged_by = None
            await announce(session, alert, ESCALATED)
    elif step.action is Action.RESOLVE and alert is not None:
        alert.status = AlertStatus.RESOLVED.value
        alert.resolved_at = now
        alert.resolved_by = None
        await announce(session, alert, RESOLVED)
    await _store_timers(session, series, step.timers, now)
    return step.action


async def _store_timers(session: AsyncSession, series: Series, timers: Timers | None, now: datetime) -> None:
    state = series.state
    if timers is None:
        if state is not None:
            await session.delete(state)
        return
    if state is None:
        labels = series.observation.labels if series.observation else {}
        state = AlertRuleState(fingerprint=series.fingerprint, rule=series.rule.name, labels=labels)
        session.add(state)
    state.breaching_since = timers.breaching_since
    state.clear_since = timers.clear_since
    state.updated_at = now


def _context(rule: Rule, observation: Observation) -> dict[str, object]:
    return {
        **observation.context,
        "value": observation.value,
        "thresholds": {severity.value: threshold for severity, threshold in rule.thresholds},
        "for_seconds": rule.for_.total_seconds(),
        "keep_firing_for_seconds": rule.keep_firing_for.total_seconds(),
    }
