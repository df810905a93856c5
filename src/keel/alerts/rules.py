"""Every alert rule, in one place: what it watches, its thresholds and its timers.

Per rule: the series (labels), the value, severity thresholds (above), ``for`` and
``keep_firing_for``.

- ``route_latency_p95`` — method, route; p95 ms over 5 min (≥ 20 requests);
  WARNING > 1000, CRITICAL > 3000; 2 min; 5 min.
- ``error_rate_5xx`` — method, route, and ``*``/``*`` for all routes; share of 5xx over
  5 min (≥ 20 requests); WARNING > 5 %, CRITICAL > 20 %; 2 min; 5 min.
- ``rate_limited_burst`` — no labels; 429 answers over 5 min; WARNING > 100,
  CRITICAL > 1000; 0; 5 min.
- ``failed_login_burst`` — no labels; failed logins over 5 min; CRITICAL > 20; 0; 10 min.
- ``dead_jobs`` — kind; jobs that went dead in the last 24 h; WARNING > 0,
  CRITICAL > 10; 0; 0.
- ``webhook_failing`` — webhook_id; minutes of failures without a success;
  WARNING > 60; 0; 5 min.
- ``webhook_disabled`` — webhook_id; 1 for a webhook disabled in the last 24 h;
  WARNING > 0; 0; 0.

A rule's ``observe`` returns the series whose value it can compute now; a series it
does not return has a false condition (no traffic on a route is not a breach). Each
threshold is "above": the highest one the value exceeds is the severity. The three
request rules watch the same five minutes of request statistics, read once per
evaluation (:meth:`Context.requests_since`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from keel.alerts.models import Severity
from keel.audit import repository as audit_repository
from keel.auth.service import LOGIN_FAILED
from keel.platform.observability.stats import MINUTE, Totals
from keel.platform.observability.stats_store import Merged, StatsStore
from keel.platform.queue.models import Job, Status

# The webhooks domain has no service call for "subscriptions in trouble" yet; the rule
# reads the two columns it needs (a read, no domain rule involved).
from keel.webhooks.models import Webhook


@dataclass(frozen=True, slots=True)
class Observation:
    """One series' current value, and what the alert should say about it."""

    labels: dict[str, str]
    value: float
    summary: str
    context: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Context:
    """What the rules of one evaluation read: its transaction, its time (a test picks it)
    and the request statistics."""

    session: AsyncSession
    now: datetime
    stats: StatsStore
    # Merged windows by the minute they start in.
    _windows: dict[int, Merged] = field(default_factory=dict)

    async def requests_since(self, since: datetime) -> Merged:
        """Every replica's request statistics from ``since``'s minute to now, per route:
        read once per evaluation and start, so the rules share it and must not change it."""
        start = int(since.timestamp() // MINUTE)
        window = self._windows.get(start)
        if window is None:
            window = self._windows[start] = await self.stats.window(self.session, since, self.now)
        return window


Observe = Callable[[Context, Mapping[str, Any]], Awaitable[list[Observation]]]


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    description: str
    observe: Observe
    # (severity, threshold), lowest first: the value must be above the threshold.
    thresholds: tuple[tuple[Severity, float], ...]
    for_: timedelta = timedelta(0)
    keep_firing_for: timedelta = timedelta(0)
    params: Mapping[str, Any] = field(default_factory=dict)

    def classify(self, value: float) -> Severity | None:
        """The severity of the highest threshold ``value`` is above; None below all."""
        found = None
        for severity, threshold in self.thresholds:
            if value > threshold:
                found = severity
        return found

    async def evaluate(self, context: Context) -> list[Observation]:
        return await self.observe(context, self.params)


def _window(params: Mapping[str, Any]) -> timedelta:
    window: timedelta = params["window"]
    return window


def _route_labels(method: str, route: str) -> dict[str, str]:
    return {"method": method, "route": route}


async def _latency(context: Context, params: Mapping[str, Any]) -> list[Observation]:
    found = []
    for (method, route), totals in (await context.requests_since(context.now - _window(params))).items():
        p95 = totals.sketch.quantile(0.95)
        if totals.count < params["min_requests"] or p95 is None:
            continue
        found.append(
            Observation(
                _route_labels(method, route),
                round(p95, 3),
                f"p95 latency of {method} {route} is {p95:.0f} ms (SLO {params['slo_ms']} ms)",
                {"requests": totals.count, "p95_ms": round(p95, 3), "slo_ms": params["slo_ms"]},
            )
        )
    return found


def _error_rate(method: str, route: str, totals: Totals) -> Observation:
    rate = totals.errors_5xx / totals.count
    where = "all routes" if route == "*" else f"{method} {route}"
    return Observation(
        _route_labels(method, route),
        round(rate, 6),
        f"{rate:.1%} of requests to {where} answered 5xx",
        {"requests": totals.count, "errors_5xx": totals.errors_5xx},
    )


async def _errors(context: Context, params: Mapping[str, Any]) -> list[Observation]:
    merged = await context.requests_since(context.now - _window(params))
    overall = Totals()
    found = []
    for (method, route), totals in merged.items():
        overall.merge(totals)
        if totals.count >= params["min_requests"]:
            found.append(_error_rate(method, route, totals))
    if overall.count >= params["min_requests"]:
        found.append(_error_rate("*", "*", overall))
    return found


async def _rate_limited(context: Context, params: Mapping[str, Any]) -> list[Observation]:
    merged = await context.requests_since(context.now - _window(params))
    refused = sum(totals.rate_limited for totals in merged.values())
    if not refused:
        return []
    top = sorted(merged.items(), key=lambda item: -item[1].rate_limited)[:5]
    return [
        Observation(
            {},
            refused,
            f"{refused} requests refused with 429 in the last {_window(params)}",
            {
                "rate_limited": refused,
                "top_routes": [
                    {"method": method, "route": route, "rate_limited": totals.rate_limited}
                    for (method, route), totals in top
                    if totals.rate_limited
                ],
            },
        )
    ]


async def _failed_logins(context: Context, params: Mapping[str, Any]) -> list[Observation]:
    since = context.now - _window(params)
    counts = await audit_repository.count_actions_since(context.session, (LOGIN_FAILED,), since)
    failed = counts[LOGIN_FAILED]
    if not failed:
        return []
    return [
        Observation(
            {},
            failed,
            f"{failed} failed logins in the last {_window(params)}: possible credential stuffing",
            {"failed_logins": failed},
        )
    ]


async def _dead_jobs(context: Context, params: Mapping[str, Any]) -> list[Observation]:
    rows = await context.session.execute(
        select(Job.kind, func.count())
        .where(Job.status == Status.DEAD.value, Job.finished_at >= context.now - _window(params))
        .group_by(Job.kind)
    )
    return [
        Observation(
            {"kind": kind},
            int(dead),
            f"{dead} {kind} job(s) dead in the last {_window(params)}",
            {"dead": int(dead), "see": "GET /api/v2/admin/jobs?status=dead"},
        )
        for kind, dead in rows
    ]


async def _webhooks_failing(context: Context, params: Mapping[str, Any]) -> list[Observation]:
    rows = await context.session.execute(
        select(Webhook.id, Webhook.failing_since, Webhook.consecutive_failures).where(
            Webhook.failing_since.is_not(None), Webhook.disabled_at.is_(None)
        )
    )
    found = []
    for webhook_id, failing_since, failures in rows:
        if failing_since is None:  # excluded by the query; narrows the type
            continue
        minutes = (context.now - failing_since).total_seconds() / 60
        found.append(
            Observation(
                {"webhook_id": str(webhook_id)},
                round(minutes, 1),
                f"webhook {webhook_id} has failed every delivery for {minutes:.0f} min",
                {"failing_since": failing_since.isoformat(), "consecutive_failures": failures},
            )
        )
    return found


async def _webhooks_disabled(context: Context, params: Mapping[str, Any]) -> list[Observation]:
    rows = await context.session.execute(
        select(Webhook.id, Webhook.disabled_at, Webhook.disabled_reason).where(
            Webhook.disabled_at >= context.now - _window(params)
        )
    )
    return [
        Observation(
            {"webhook_id": str(webhook_id)},
            1,
            f"webhook {webhook_id} was disabled: {reason or 'too many failures'}",
            {"disabled_at": disabled_at.isoformat() if disabled_at else None, "disabled_reason": reason},
        )
        for webhook_id, disabled_at, reason in rows
    ]


FIVE_MINUTES = timedelta(minutes=5)

RULES: tuple[Rule, ...] = (
    Rule(
        "route_latency_p95",
        "p95 latency of a route over its SLO.",
        _latency,
        ((Severity.WARNING, 1000.0), (Severity.CRITICAL, 3000.0)),
        for_=timedelta(minutes=2),
        keep_firing_for=FIVE_MINUTES,
        params={"window": FIVE_MINUTES, "min_requests": 20, "slo_ms": 1000},
    ),
    Rule(
        "error_rate_5xx",
        "Share of requests answered 5xx, per route and over all routes.",
        _errors,
        ((Severity.WARNING, 0.05), (Severity.CRITICAL, 0.20)),
        for_=timedelta(minutes=2),
        keep_firing_for=FIVE_MINUTES,
        params={"window": FIVE_MINUTES, "min_requests": 20},
    ),
    Rule(
        "rate_limited_burst",
        "A burst of requests refused by the rate limiter (429).",
        _rate_limited,
        ((Severity.WARNING, 100.0), (Severity.CRITICAL, 1000.0)),
        keep_firing_for=FIVE_MINUTES,
        params={"window": FIVE_MINUTES},
    ),
    Rule(
        "failed_login_burst",
        "A burst of failed logins: a security incident (credential stuffing, brute force).",
        _failed_logins,
        ((Severity.CRITICAL, 20.0),),
        keep_firing_for=timedelta(minutes=10),
        params={"window": FIVE_MINUTES},
    ),
    Rule(
        "dead_jobs",
        "Background jobs that failed every attempt (dead), per kind.",
        _dead_jobs,
        ((Severity.WARNING, 0.0), (Severity.CRITICAL, 10.0)),
        params={"window": timedelta(hours=24)},
    ),
    Rule(
        "webhook_failing",
        "A webhook subscription whose deliveries have all failed for a while.",
        _webhooks_failing,
        ((Severity.WARNING, 60.0),),
        keep_firing_for=FIVE_MINUTES,
    ),
    Rule(
        "webhook_disabled",
        "A webhook subscription Keel disabled (410 Gone, or too many failures).",
        _webhooks_disabled,
        ((Severity.WARNING, 0.0),),
        params={"window": timedelta(hours=24)},
    ),
)

RULES_BY_NAME: dict[str, Rule] = {rule.name: rule for rule in RULES}
