"""The alert state machine, as a pure function of one series' state and ``now``.

A *series* is one rule with one set of labels (a route, a webhook, …). At every
evaluation the engine gets, per series, the severity the rule's thresholds give the
current value (None: the condition does not hold), the series' timers and the severity
of its open alert if there is one, and answers what to do:

- the condition holds, no alert open: ``WAIT`` until it has held for ``for``, then
  ``OPEN``;
- it holds, an alert is open: ``UPDATE`` it (one more sighting), or ``ESCALATE`` it when
  the severity is higher than the alert's (severities never go down on an open alert);
- it does not hold, an alert is open: ``WAIT`` until it has been false for
  ``keep_firing_for`` (a flapping condition keeps one alert), then ``RESOLVE``;
- it does not hold, no alert open: ``FORGET`` the series (a blip shorter than ``for``
  leaves nothing behind).

Nothing here reads a clock or a database: the caller passes ``now`` and stores the
returned timers, so the same step runs in any worker, after any restart.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from keel.alerts.models import Severity


class Action(StrEnum):
    WAIT = "wait"
    OPEN = "open"
    UPDATE = "update"
    ESCALATE = "escalate"
    RESOLVE = "resolve"
    FORGET = "forget"


@dataclass(frozen=True, slots=True)
class Timers:
    """Since when the condition has held, and since when it has been false while an
    alert stayed open."""

    breaching_since: datetime | None = None
    clear_since: datetime | None = None


@dataclass(frozen=True, slots=True)
class Step:
    action: Action
    # What to store for the series; None: drop it.
    timers: Timers | None
    # The alert's severity after the step (OPEN, UPDATE, ESCALATE), else None.
    severity: Severity | None = None


def step(
    *,
    now: datetime,
    severity: Severity | None,
    timers: Timers | None,
    open_severity: Severity | None,
    for_: timedelta,
    keep_firing_for: timedelta,
) -> Step:
    """The next step of one series; ``severity`` is None when the condition is false,
    ``open_severity`` None when no alert is open."""
    timers = timers or Timers()
    if severity is not None:
        since = timers.breaching_since or now
        holding = Timers(breaching_since=since)
        if open_severity is not None:
            higher = severity.rank > open_severity.rank
            return Step(
                Action.ESCALATE if higher else Action.UPDATE, holding, severity if higher else open_severity
            )
        if now - since >= for_:
            return Step(Action.OPEN, holding, severity)
        return Step(Action.WAIT, holding)
    if open_severity is None:
        return Step(Action.FORGET, None)
    cleared = timers.clear_since or now
    if now - cleared >= keep_firing_for:
        return Step(Action.RESOLVE, None)
    return Step(Action.WAIT, Timers(clear_since=cleared))
