"""Each rule on its real data source, on both backends: rows written through the models
and services that write them in production, evaluated at a chosen time."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from keel.alerts import evaluation, tasks
from keel.alerts.rules import RULES_BY_NAME, Rule
from keel.audit.models import AuditLog
from keel.auth.service import LOGIN_FAILED
from keel.platform.observability.stats import RequestStats
from keel.platform.observability.stats_store import Merged, StatsStore
from keel.platform.queue.models import Job, Status
from keel.platform.resources import Resources
from keel.tasks import registry
from keel.users.models import Role
from keel.webhooks.models import Webhook
from tests.alerts.helpers import T0, alerts_of, evaluate, unique
from tests.identity import Accounts


class Clock:
    def __init__(self, at: float) -> None:
        self.at = at

    def __call__(self) -> float:
        return self.at


def rule(name: str) -> Rule:
    """The production rule under a name of its own, opening at once (``for`` 0)."""
    return dataclasses.replace(unique(RULES_BY_NAME[name]), for_=timedelta(0))


async def record(resources: Resources, route: str, statuses: list[int], seconds: float, hour: int) -> None:
    stats = RequestStats("probe", clock=Clock((T0 + timedelta(hours=hour, minutes=1)).timestamp()))
    for status in statuses:
        stats.record("GET", route, status, seconds)
    await resources.stats.flush(stats)


def test_evaluation_runs_every_30_seconds_as_a_periodic_task() -> None:
    assert registry.periodic[tasks.EVALUATE_TASK].every == timedelta(seconds=30)


async def test_latency_over_the_slo_opens_a_warning_for_the_route(resources: Resources) -> None:
    route = f"/probe/{uuid.uuid4().hex}"
    await record(resources, route, [200] * 30, 2.0, hour=1)
    latency = rule("route_latency_p95")
    await evaluate(resources, latency, T0 + timedelta(hours=1, minutes=3))
    (alert,) = [a for a in await alerts_of(resources, latency) if a.labels["route"] == route]
    assert (alert.severity, alert.labels["method"]) == ("WARNING", "GET")
    assert abs(alert.last_value - 2000) / 2000 < 0.03
    assert alert.context["requests"] == 30


async def test_5xx_share_opens_a_critical_alert_per_route_and_overall(resources: Resources) -> None:
    route = f"/probe/{uuid.uuid4().hex}"
    await record(resources, route, [200] * 20 + [500] * 10, 0.01, hour=2)
    errors = rule("error_rate_5xx")
    await evaluate(resources, errors, T0 + timedelta(hours=2, minutes=3))
    by_route = {a.labels["route"]: a for a in await alerts_of(resources, errors)}
    assert by_route[route].severity == "CRITICAL"
    assert round(by_route[route].last_value, 3) == 0.333
    assert by_route["*"].severity == "CRITICAL"
    # Six minutes later the window is empty: the condition is false, keep_firing_for is 5 min.
    await evaluate(resources, errors, T0 + timedelta(hours=2, minutes=9))
    await evaluate(resources, errors, T0 + timedelta(hours=2, minutes=14))
    assert {a.status for a in await alerts_of(resources, errors)} == {"resolved"}


async def test_a_burst_of_429_answers_opens_an_alert(resources: Resources) -> None:
    route = f"/probe/{uuid.uuid4().hex}"
    await record(resources, route, [429] * 150 + [200] * 10, 0.001, hour=3)
    limited = rule("rate_limited_burst")
    await evaluate(resources, limited, T0 + timedelta(hours=3, minutes=2))
    (alert,) = await alerts_of(resources, limited)
    assert (alert.severity, alert.last_value) == ("WARNING", 150)
    assert alert.context["top_routes"][0] == {"method": "GET", "route": route, "rate_limited": 150}


class CountingStore(StatsStore):
    """The app's store, counting the minute ranges read."""

    def __init__(self, inner: StatsStore) -> None:
        self.inner = inner
        self.reads: list[tuple[int, int]] = []

    async def flush(self, stats: RequestStats) -> int:
        return await self.inner.flush(stats)

    async def minutes(self, session: AsyncSession, first: int, last: int) -> Merged:
        self.reads.append((first, last))
        return await self.inner.minutes(session, first, last)


async def test_one_evaluation_reads_the_request_window_once_for_the_three_request_rules(
    resources: Resources,
) -> None:
    route = f"/probe/{uuid.uuid4().hex}"
    await record(resources, route, [429] * 150 + [500] * 30 + [200] * 10, 2.0, hour=7)
    request_rules = [rule("route_latency_p95"), rule("error_rate_5xx"), rule("rate_limited_burst")]
    store = CountingStore(resources.stats)
    async with resources.db.writer() as session:
        await evaluation.evaluate(session, T0 + timedelta(hours=7, minutes=2), request_rules, stats=store)
        await session.commit()
    assert len(store.reads) == 1
    for each in request_rules:  # and each rule saw the window
        assert [alert.severity for alert in await alerts_of(resources, each)][:1] == ["WARNING"], each.name


async def add_failed_logins(resources: Resources, count: int, at: datetime) -> None:
    async with resources.db.writer() as session:
        for n in range(count):
            session.add(
                AuditLog(
                    occurred_at=at - timedelta(seconds=n),
                    actor_type="anonymous",
                    action=LOGIN_FAILED,
                    outcome="failure",
                    detail={"email": f"victim{n}@example.com"},
                )
            )
        await session.commit()


async def test_a_burst_of_failed_logins_is_critical(resources: Resources) -> None:
    at = T0 + timedelta(hours=4)
    logins = rule("failed_login_burst")
    await add_failed_logins(resources, 20, at)
    await evaluate(resources, logins, at)  # 20: not above the threshold
    assert await alerts_of(resources, logins) == []
    await add_failed_logins(resources, 5, at + timedelta(seconds=30))
    await evaluate(resources, logins, at + timedelta(minutes=1))
    (alert,) = await alerts_of(resources, logins)
    assert (alert.severity, alert.last_value, alert.status) == ("CRITICAL", 25, "pending")


async def test_a_dead_job_opens_an_alert_for_its_kind(resources: Resources) -> None:
    kind = f"probe.{uuid.uuid4().hex[:8]}"
    at = T0 + timedelta(hours=5)
    async with resources.db.writer() as session:
        session.add(
            Job(
                kind=kind,
                payload={},
                status=Status.DEAD.value,
                attempts=3,
                max_attempts=3,
                last_error="boom",
                finished_at=at,
            )
        )
        await session.commit()
    dead = rule("dead_jobs")
    await evaluate(resources, dead, at + timedelta(minutes=1))
    (alert,) = [a for a in await alerts_of(resources, dead) if a.labels == {"kind": kind}]
    assert (alert.severity, alert.last_value) == ("WARNING", 1)


async def test_failing_and_disabled_webhooks_open_alerts(resources: Resources, accounts: Accounts) -> None:
    owner = await accounts.create(role=Role.USER, login=False)
    at = T0 + timedelta(hours=6)
    failing = Webhook(
        owner_id=owner.id,
        name="failing",
        url="https://example.com/hook",
        events=["*"],
        secret="sealed",
        consecutive_failures=12,
        failing_since=at - timedelta(hours=2),
    )
    disabled = Webhook(
        owner_id=owner.id,
        name="disabled",
        url="https://example.com/gone",
        events=["*"],
        secret="sealed",
        is_active=False,
        disabled_at=at - timedelta(hours=1),
        disabled_reason="410 Gone",
    )
    async with resources.db.writer() as session:
        session.add_all([failing, disabled])
        await session.commit()

    failing_rule, disabled_rule = rule("webhook_failing"), rule("webhook_disabled")
    await evaluate(resources, failing_rule, at)
    await evaluate(resources, disabled_rule, at)
    (failing_alert,) = [
        a for a in await alerts_of(resources, failing_rule) if a.labels == {"webhook_id": str(failing.id)}
    ]
    assert (failing_alert.severity, failing_alert.last_value) == ("WARNING", 120)
    (disabled_alert,) = [
        a for a in await alerts_of(resources, disabled_rule) if a.labels == {"webhook_id": str(disabled.id)}
    ]
    assert disabled_alert.context["disabled_reason"] == "410 Gone"
