"""The state machine alone: no clock, no database."""

from __future__ import annotations

from datetime import timedelta

from keel.alerts.engine import Action, Timers, step
from keel.alerts.models import Severity
from tests.alerts.helpers import T0

FOR = timedelta(minutes=2)
KEEP = timedelta(minutes=5)


def test_a_breach_waits_for_the_for_duration_then_opens() -> None:
    first = step(
        now=T0, severity=Severity.WARNING, timers=None, open_severity=None, for_=FOR, keep_firing_for=KEEP
    )
    assert first.action is Action.WAIT
    assert first.timers == Timers(breaching_since=T0)
    later = step(
        now=T0 + FOR,
        severity=Severity.WARNING,
        timers=first.timers,
        open_severity=None,
        for_=FOR,
        keep_firing_for=KEEP,
    )
    assert (later.action, later.severity) == (Action.OPEN, Severity.WARNING)


def test_a_blip_is_forgotten() -> None:
    result = step(
        now=T0,
        severity=None,
        timers=Timers(breaching_since=T0),
        open_severity=None,
        for_=FOR,
        keep_firing_for=KEEP,
    )
    assert (result.action, result.timers) == (Action.FORGET, None)


def test_higher_severity_escalates_and_lower_keeps_the_open_severity() -> None:
    timers = Timers(breaching_since=T0)
    up = step(
        now=T0,
        severity=Severity.CRITICAL,
        timers=timers,
        open_severity=Severity.WARNING,
        for_=FOR,
        keep_firing_for=KEEP,
    )
    assert (up.action, up.severity) == (Action.ESCALATE, Severity.CRITICAL)
    down = step(
        now=T0,
        severity=Severity.WARNING,
        timers=timers,
        open_severity=Severity.CRITICAL,
        for_=FOR,
        keep_firing_for=KEEP,
    )
    assert (down.action, down.severity) == (Action.UPDATE, Severity.CRITICAL)


def test_an_open_alert_resolves_only_after_keep_firing_for() -> None:
    waiting = step(
        now=T0, severity=None, timers=None, open_severity=Severity.WARNING, for_=FOR, keep_firing_for=KEEP
    )
    assert waiting.action is Action.WAIT
    assert waiting.timers == Timers(clear_since=T0)
    still = step(
        now=T0 + KEEP - timedelta(seconds=1),
        severity=None,
        timers=waiting.timers,
        open_severity=Severity.WARNING,
        for_=FOR,
        keep_firing_for=KEEP,
    )
    assert still.action is Action.WAIT
    done = step(
        now=T0 + KEEP,
        severity=None,
        timers=waiting.timers,
        open_severity=Severity.WARNING,
        for_=FOR,
        keep_firing_for=KEEP,
    )
    assert (done.action, done.timers) == (Action.RESOLVE, None)
