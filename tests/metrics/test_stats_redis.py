"""Request statistics with their minutes in Redis (:class:`RedisStatsStore`), against the
real Redis, with the hours in each backend's database: replicas' changes merge by
addition, a flush that failed (before or after Redis applied it) is retried without
double counting, the roll-up is idempotent, and summaries equal the database store's.

Each test writes under a Redis prefix of its own (inside the run's, cleaned at the end),
on its own day far from the wall clock, with routes of its own.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from pydantic import ValidationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy import select

from keel.platform.http.errors import ServiceUnavailable
from keel.platform.observability.sketch import LatencySketch
from keel.platform.observability.stats import RequestStats, Totals
from keel.platform.observability.stats_redis import KEPT_SECONDS, RedisStatsStore
from keel.platform.observability.stats_store import HOUR, DatabaseStatsStore, Merged, RequestStat, StatsStore
from keel.platform.redis_client import connect_redis
from keel.platform.resources import Resources
from tests import services
from tests.conftest import Backend, free_port, make_settings
from tests.metrics.helpers import Clock, a_route

# Far from the wall clock, and from the other statistics tests' hours.
T1 = datetime(2027, 6, 7, 10, 0, tzinfo=UTC)


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[RedisStatsStore]:
    client = connect_redis(redis_url, timeout_seconds=2.0)
    yield RedisStatsStore(client, prefix=f"{services.REDIS_PREFIX}stats-{uuid.uuid4().hex[:8]}:")
    await client.aclose()


async def window(resources: Resources, store: StatsStore, since: datetime, now: datetime) -> Merged:
    async with resources.db.reader() as session:
        return await store.window(session, since, now)


async def roll_up(resources: Resources, store: StatsStore, now: datetime) -> int:
    async with resources.db.writer() as session:
        written = await store.roll_up(session, now)
        await session.commit()
    return written


def expected(*records: tuple[int, int, float]) -> Totals:
    """Totals of (how many, status, seconds) requests, as one process would count them."""
    totals = Totals()
    for times, status, seconds in records:
        totals.count += times
        totals.errors_5xx += times if status >= 500 else 0
        totals.errors_4xx += times if 400 <= status < 500 else 0
        totals.rate_limited += times if status == 429 else 0
        totals.sketch.add(seconds * 1000, times)
    return totals


def record(stats: RequestStats, route: str, *records: tuple[int, int, float]) -> None:
    for times, status, seconds in records:
        for _ in range(times):
            stats.record("GET", route, status, seconds)


def figures(totals: Totals) -> tuple[int, int, int, int, LatencySketch]:
    return (totals.count, totals.errors_4xx, totals.errors_5xx, totals.rate_limited, totals.sketch)


def test_minutes_go_to_redis_by_default_when_redis_is_configured() -> None:
    redis_url = "redis://127.0.0.1:6379/0"
    assert make_settings(redis_url=redis_url).effective_stats_backend == "redis"
    assert make_settings().effective_stats_backend == "database"
    assert make_settings(redis_url=redis_url, stats_backend="database").effective_stats_backend == "database"
    with pytest.raises(ValidationError, match="KEEL_STATS_BACKEND=redis needs KEEL_REDIS_URL"):
        make_settings(stats_backend="redis")


def test_the_app_uses_the_store_its_settings_select(app: FastAPI, backend: Backend) -> None:
    resources: Resources = app.state.resources
    expected_store = RedisStatsStore if backend == "postgres" else DatabaseStatsStore
    assert type(resources.stats) is expected_store


async def test_changes_of_two_replicas_merge_exactly(resources: Resources, store: RedisStatsStore) -> None:
    route = a_route("/redis-test")
    clock = Clock(T1 + timedelta(minutes=3))
    first, second = RequestStats("replica-a", clock=clock), RequestStats("replica-b", clock=clock)
    record(first, route, (5, 200, 0.010), (2, 404, 0.002))
    record(second, route, (3, 500, 0.300), (4, 429, 0.001))
    assert await store.flush(first) == 1
    assert await store.flush(second) == 1
    # More in the same minute: only what changed since is added.
    record(first, route, (6, 200, 0.050))
    record(second, route, (1, 503, 1.5))
    await store.flush(first)
    await store.flush(second)
    assert await store.flush(first) == 0  # nothing new, nothing sent

    found = await window(resources, store, T1, T1 + timedelta(minutes=5))
    want = expected((5, 200, 0.010), (2, 404, 0.002), (3, 500, 0.300), (4, 429, 0.001))
    want.merge(expected((6, 200, 0.050), (1, 503, 1.5)))
    assert figures(found[("GET", route)]) == figures(want)


async def test_a_minute_is_one_hash_expiring_after_25_hours(store: RedisStatsStore) -> None:
    route = a_route("/redis-test")
    at = T1 + timedelta(days=1, minutes=7)
    stats = RequestStats("replica-a", clock=Clock(at))
    record(stats, route, (2, 200, 0.020), (1, 429, 0.001))
    await store.flush(stats)

    key = store.minute_key(int(at.timestamp() // 60))
    stored = {
        name.decode() if isinstance(name, bytes) else name: int(value)
        for name, value in (await store.redis.hgetall(key)).items()
    }
    sketch = expected((2, 200, 0.020), (1, 429, 0.001)).sketch.fields()
    # Figures that are still 0 (5xx here) are never sent.
    want = {"count": 3, "4xx": 1, "429": 1, **sketch}
    assert stored == {f"GET {route}|{name}": n for name, n in want.items()}
    assert KEPT_SECONDS - 60 <= await store.redis.ttl(key) <= KEPT_SECONDS


Script = Callable[..., Awaitable[Any]]


def failing(script: Script, *, after_applying: bool) -> Script:
    """The store's script, failing once: before it reaches Redis (connection refused) or
    after Redis applied it (the answer was lost)."""
    failed = False

    async def call(**kwargs: Any) -> Any:
        nonlocal failed
        if failed:
            return await script(**kwargs)
        failed = True
        if after_applying:
            await script(**kwargs)
            raise RedisTimeoutError("Timeout reading from socket")
        raise RedisConnectionError("Connection refused")

    return call


@pytest.mark.parametrize("after_applying", [False, True], ids=["not-applied", "applied-unanswered"])
async def test_a_flush_retried_after_a_redis_failure_counts_once(
    resources: Resources, store: RedisStatsStore, after_applying: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    route = a_route("/redis-test")
    clock = Clock(T1 + timedelta(days=2, minutes=1))
    stats = RequestStats("replica-a", clock=clock)
    record(stats, route, (4, 200, 0.010))
    await store.flush(stats)

    record(stats, route, (3, 500, 0.100))
    monkeypatch.setattr(store, "_apply_script", failing(store._apply_script, after_applying=after_applying))
    with pytest.raises(RedisError):
        await store.flush(stats)
    assert stats.pending() != []  # not marked written
    # Recorded while in doubt, in this minute and the next one.
    record(stats, route, (2, 429, 0.001))
    clock.at += timedelta(minutes=1)
    record(stats, route, (1, 200, 0.010))
    assert await store.flush(stats) == 3  # the batch in doubt, then both minutes' news
    assert stats.pending() == []
    assert await store.flush(stats) == 0

    found = await window(resources, store, T1 + timedelta(days=2), clock.at)
    want = expected((4, 200, 0.010), (3, 500, 0.100), (2, 429, 0.001), (1, 200, 0.010))
    assert figures(found[("GET", route)]) == figures(want)


async def test_an_unreachable_redis_fails_the_flush_and_the_read_not_the_requests(
    resources: Resources,
) -> None:
    client = connect_redis(f"redis://127.0.0.1:{free_port()}/0", timeout_seconds=0.2)
    down = RedisStatsStore(client, prefix=f"{services.REDIS_PREFIX}down:")
    stats = RequestStats("replica-a", clock=Clock(T1))
    stats.record("GET", a_route("/redis-test"), 200, 0.01)
    try:
        with pytest.raises(RedisError):
            await down.flush(stats)
        assert len(stats.pending()) == 1  # kept for the next flush
        with pytest.raises(ServiceUnavailable):
            await window(resources, down, T1, T1 + timedelta(minutes=5))
    finally:
        await client.aclose()


async def test_the_roll_up_of_redis_minutes_into_hours_is_idempotent(
    resources: Resources, store: RedisStatsStore
) -> None:
    route = a_route("/redis-test")
    day = T1 + timedelta(days=3)
    clock = Clock(day + timedelta(minutes=10))
    first, second = RequestStats("replica-a", clock=clock), RequestStats("replica-b", clock=clock)
    record(first, route, (3, 200, 0.020))
    record(second, route, (1, 500, 0.200))
    clock.at = day + timedelta(minutes=50)
    record(second, route, (2, 200, 0.040))
    await store.flush(first)
    await store.flush(second)

    async def hour_rows() -> list[tuple[datetime, int, int, dict[str, Any]]]:
        async with resources.db.reader() as session:
            rows = await session.execute(
                select(
                    RequestStat.period_start, RequestStat.count, RequestStat.errors_5xx, RequestStat.sketch
                ).where(RequestStat.route == route, RequestStat.resolution == HOUR)
            )
            return [tuple(row) for row in rows]

    now = day + timedelta(hours=1, minutes=5)
    assert await roll_up(resources, store, now) == 1
    once = await hour_rows()
    assert await roll_up(resources, store, now) == 1
    assert await hour_rows() == once
    want = expected((3, 200, 0.020), (1, 500, 0.200), (2, 200, 0.040))
    assert once == [(day, 6, 1, want.sketch.to_json())]

    # A minute written late (a replica's flush after the first roll-up) is counted by the next.
    clock.at = day + timedelta(minutes=59)
    record(first, route, (1, 200, 0.020))
    await store.flush(first)
    await roll_up(resources, store, now + timedelta(minutes=10))
    assert [(start, count) for start, count, _, _ in await hour_rows()] == [(day, 7)]


async def test_summaries_equal_the_database_stores_for_the_same_requests(
    resources: Resources, store: RedisStatsStore
) -> None:
    database = DatabaseStatsStore(resources.db)
    routes: dict[StatsStore, str] = {database: a_route("/redis-test"), store: a_route("/redis-test")}
    day = T1 + timedelta(days=4)
    clocks = {target: Clock(day) for target in routes}
    replicas = {
        target: (
            RequestStats("replica-a", clock=clocks[target]),
            RequestStats("replica-b", clock=clocks[target]),
        )
        for target in routes
    }
    # Three hours and a half of traffic on two replicas, flushed as it goes.
    for step in range(42):
        at = day + timedelta(minutes=5 * step)
        status = (200, 200, 404, 500, 429, 200)[step % 6]
        for target, route in routes.items():
            clocks[target].at = at
            first, second = replicas[target]
            record(first, route, (step % 4 + 1, status, 0.001 * (step + 1)))
            record(second, route, (1, 200, 0.5 + step / 100))
            await target.flush(first)
            await target.flush(second)
    now = day + timedelta(hours=3, minutes=28)
    for target in routes:
        await roll_up(resources, target, now)

    for period in ("1h", "24h", "7d"):
        found = {}
        for target, route in routes.items():
            async with resources.db.reader() as session:
                summary = await target.summary(session, period, now)
            (entry,) = [entry for entry in summary["routes"] if entry["route"] == route]
            found[target] = {name: value for name, value in entry.items() if name != "route"}
        assert found[store] == found[database], period
        assert found[store]["count"] > 0
