"""The request statistics behind ``GET /metrics/summary``, on both backends (the app's
store: minutes in the database on SQLite, in Redis on PostgreSQL + Redis): what the
middleware records, minutes merged across processes, hourly roll-ups merged into longer
periods, retention, and who may read the summary.

On PostgreSQL the run's database holds every module's statistics, so the tests look at
routes of their own (a random template) rather than at the overall figures.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from keel.platform.observability.stats import RequestStats
from keel.platform.observability.stats_store import HOUR, DatabaseStatsStore, RequestStat
from keel.platform.resources import Resources
from keel.users.models import Role
from tests.identity import Accounts
from tests.metrics.helpers import Clock, a_route

SUMMARY = "/api/v2/metrics/summary"
# A fixed hour, far enough from the wall clock that no real request lands in it.
T0 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)


def route_stats(summary: dict[str, Any], route: str, method: str = "GET") -> dict[str, Any]:
    (found,) = [entry for entry in summary["routes"] if (entry["method"], entry["route"]) == (method, route)]
    return dict(found)


async def summarise(resources: Resources, period: str, now: datetime) -> dict[str, Any]:
    async with resources.db.reader() as session:
        return await resources.stats.summary(session, period, now)


async def test_counts_error_rates_and_percentiles_of_a_route(resources: Resources) -> None:
    route = a_route()
    stats = RequestStats("process-a", clock=Clock(T0 + timedelta(minutes=5)))
    latencies_ms = [float(n) for n in range(1, 101)]
    statuses = [200] * 90 + [404] * 6 + [500] * 4
    for latency, status in zip(latencies_ms, statuses, strict=True):
        stats.record("GET", route, status, latency / 1000)
    assert await resources.stats.flush(stats) == 1

    found = route_stats(await summarise(resources, "1h", T0 + timedelta(minutes=30)), route)
    assert found["count"] == 100
    assert found["error_rate"] == 0.04
    assert found["client_error_rate"] == 0.06
    assert found["requests_per_second"] == round(100 / 3600, 6)
    for key, exact in (("p50_ms", 50.0), ("p95_ms", 95.0), ("p99_ms", 99.0)):
        value = found[key]
        assert isinstance(value, float)
        assert abs(value - exact) / exact <= 0.03, (key, value)


async def test_processes_writing_the_same_minute_are_merged(resources: Resources) -> None:
    route = a_route()
    clock = Clock(T0 + timedelta(minutes=7))
    first, second = RequestStats("process-a", clock=clock), RequestStats("process-b", clock=clock)
    for _ in range(3):
        first.record("GET", route, 200, 0.010)
    for _ in range(2):
        second.record("GET", route, 503, 0.100)
    await resources.stats.flush(first)
    await resources.stats.flush(second)
    # A process writes its running totals again: replaced, not added.
    first.record("GET", route, 200, 0.010)
    await resources.stats.flush(first)

    found = route_stats(await summarise(resources, "1h", T0 + timedelta(minutes=30)), route)
    assert (found["count"], found["error_rate"]) == (6, round(2 / 6, 6))
    assert abs(found["p99_ms"] - 100) <= 2


async def test_nothing_changed_means_nothing_written_and_closed_minutes_are_forgotten(
    resources: Resources,
) -> None:
    route = a_route()
    clock = Clock(T0 + timedelta(minutes=1))
    stats = RequestStats("process-a", clock=clock)
    stats.record("GET", route, 200, 0.001)
    assert await resources.stats.flush(stats) == 1
    assert await resources.stats.flush(stats) == 0
    clock.at += timedelta(minutes=1)
    stats.record("GET", route, 200, 0.001)
    assert await resources.stats.flush(stats) == 1
    assert stats.pending() == []
    assert len(stats._cells) == 1  # the past minute is gone from memory, the current one stays


async def test_hours_roll_up_and_merge_into_longer_periods_without_double_counting(
    resources: Resources,
) -> None:
    route = a_route()
    clock = Clock(T0)
    stats = RequestStats("process-a", clock=clock)
    # Two requests in each of three hours: 10:00, 11:00 and 12:00 (the current one).
    for hour in range(3):
        clock.at = T0 + timedelta(hours=hour, minutes=15)
        stats.record("GET", route, 200, 0.020)
        clock.at = T0 + timedelta(hours=hour, minutes=45)
        stats.record("GET", route, 500, 0.040)
        await resources.stats.flush(stats)
    now = T0 + timedelta(hours=2, minutes=50)

    before = route_stats(await summarise(resources, "24h", now), route)
    async with resources.db.writer() as session:
        assert await resources.stats.roll_up(session, now) >= 2
        await session.commit()
    async with resources.db.reader() as session:
        hours = await session.scalar(
            select(func.count()).where(RequestStat.resolution == HOUR, RequestStat.route == route)
        )
    assert hours == 2  # 10:00 and 11:00; 12:00 is not over

    for period in ("24h", "7d"):
        found = route_stats(await summarise(resources, period, now), route)
        assert (found["count"], found["error_rate"]) == (6, 0.5), period
        assert found["p50_ms"] == before["p50_ms"]
        assert found["p99_ms"] == before["p99_ms"]
    # The last hour holds 11:50 onwards: the 12:15 and 12:45 requests.
    assert route_stats(await summarise(resources, "1h", now), route)["count"] == 2


async def test_database_rows_past_their_retention_are_dropped(resources: Resources) -> None:
    store = DatabaseStatsStore(resources.db)
    route = a_route()
    clock = Clock(T0)
    stats = RequestStats("process-a", clock=clock)
    stats.record("GET", route, 200, 0.005)
    await store.flush(stats)
    async with resources.db.writer() as session:
        await store.roll_up(session, T0 + timedelta(hours=1, minutes=5))
        await session.commit()

    async def rows(resolution: int) -> int:
        async with resources.db.reader() as session:
            count = await session.scalar(
                select(func.count()).where(RequestStat.resolution == resolution, RequestStat.route == route)
            )
            return int(count or 0)

    assert (await rows(60), await rows(HOUR)) == (1, 1)
    async with resources.db.writer() as session:
        await store.roll_up(session, T0 + timedelta(hours=26))
        await session.commit()
    assert (await rows(60), await rows(HOUR)) == (0, 1)  # minutes kept 25 hours
    async with resources.db.writer() as session:
        await store.roll_up(session, T0 + timedelta(days=8, hours=2))
        await session.commit()
    assert await rows(HOUR) == 0  # hours kept 8 days


async def test_the_middleware_counts_requests_and_times_only_whole_responses(
    app: FastAPI, client: httpx.AsyncClient, accounts: Accounts, resources: Resources
) -> None:
    user = await accounts.create()
    admin = await accounts.create(role=Role.ADMIN)
    for _ in range(3):
        absent = await client.get(f"/api/v2/products/{uuid.uuid4()}", headers=user.headers)
        assert absent.status_code == 404
    export = await client.get("/api/v2/products/export", params={"format": "csv"}, headers=user.headers)
    assert export.status_code == 200
    await resources.stats.flush(app.state.request_stats)

    response = await client.get(SUMMARY, params={"period": "1h"}, headers=admin.headers)
    assert response.status_code == 200, response.text
    summary = response.json()["data"]
    missing = route_stats(summary, "/api/v2/products/{product_id}")
    assert missing["count"] >= 3
    assert missing["client_error_rate"] > 0
    assert missing["p50_ms"] is not None
    streamed = route_stats(summary, "/api/v2/products/export")
    assert streamed["count"] >= 1
    assert streamed["p50_ms"] is None  # streamed: counted, never timed
    assert summary["overall"]["count"] >= missing["count"] + streamed["count"]


@pytest.mark.parametrize("path", [SUMMARY, "/api/v2/metrics"])
async def test_admins_and_moderators_may_read_the_summary_others_may_not(
    client: httpx.AsyncClient, accounts: Accounts, path: str
) -> None:
    assert (await client.get(path)).status_code == 401
    user = await accounts.create()
    assert (await client.get(path, headers=user.headers)).status_code == 403
    for role in (Role.ADMIN, Role.MODERATOR):
        account = await accounts.create(role=role)
        response = await client.get(path, params={"period": "7d"}, headers=account.headers)
        assert response.status_code == 200, response.text
        assert response.json()["data"]["period"] == "7d"


async def test_an_unknown_period_is_422(client: httpx.AsyncClient, accounts: Accounts) -> None:
    admin = await accounts.create(role=Role.ADMIN)
    response = await client.get(SUMMARY, params={"period": "2h"}, headers=admin.headers)
    assert response.status_code == 422


async def test_429_answers_are_counted_apart_merged_across_processes_and_rolled_up(
    resources: Resources,
) -> None:
    route = a_route()
    clock = Clock(T0 + timedelta(hours=3, minutes=2))
    first, second = RequestStats("process-a", clock=clock), RequestStats("process-b", clock=clock)
    for status in (429, 429, 404, 200):
        first.record("GET", route, status, 0.001)
    second.record("GET", route, 429, 0.001)
    await resources.stats.flush(first)
    await resources.stats.flush(second)

    async with resources.db.reader() as session:
        recent = await resources.stats.window(
            session, T0 + timedelta(hours=3), T0 + timedelta(hours=3, minutes=5)
        )
    totals = recent[("GET", route)]
    assert (totals.count, totals.errors_4xx, totals.rate_limited) == (5, 4, 3)

    async with resources.db.writer() as session:
        await resources.stats.roll_up(session, T0 + timedelta(hours=4, minutes=5), hours=1)
        await session.commit()
    async with resources.db.reader() as session:
        hour = (
            await session.execute(
                select(RequestStat.rate_limited).where(
                    RequestStat.route == route, RequestStat.resolution == HOUR
                )
            )
        ).scalar_one()
    assert hour == 3
    summary = await summarise(resources, "24h", T0 + timedelta(hours=4, minutes=5))
    assert route_stats(summary, route)["rate_limited"] == 3
