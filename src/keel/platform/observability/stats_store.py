"""Request statistics: stored per minute, rolled up per hour, and merged into the
summary of a period or the recent window the alert rules watch.

Two stores share everything but where the minutes live (``KEEL_STATS_BACKEND``):

- :class:`DatabaseStatsStore` — each process writes its own minute rows (``source`` =
  the process) in ``request_stats``, replacing them with its running totals, so a write
  never has to merge sketches in SQL;
- :class:`~.stats_redis.RedisStatsStore` — each process adds what changed since its
  last write to one Redis hash per minute, shared by every replica (see that module
  for why).

Either way the hourly roll-up merges an hour's minutes from every process into one row
per route in ``request_stats`` (``source`` = ``*``), again each time it runs, so running
it twice (or late) writes the same rows. Minutes are kept 25 hours and hours 8 days. A
summary reads the hour rows of the hours rolled up and the minutes around them, and
merges them in Python: at most one row per route and hour plus an hour or two of minutes.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import JSON, Integer, SmallInteger, String, delete, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from keel.platform.db.base import Base
from keel.platform.db.dialect import insert_for
from keel.platform.db.engine import Database
from keel.platform.observability.sketch import LatencySketch
from keel.platform.observability.stats import MINUTE, RequestStats, Totals

HOUR = 3600
MINUTES_PER_HOUR = HOUR // MINUTE
ROLLED_UP = "*"
MINUTES_KEPT = timedelta(hours=25)
HOURS_KEPT = timedelta(days=8)
# Longer routes are cut to this (the column's length) in both stores.
ROUTE_LENGTH = 200
Period = Literal["1h", "24h", "7d"]
PERIODS: dict[str, timedelta] = {
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
}
# Per (method, route): the totals over some minutes or hours.
Merged = dict[tuple[str, str], Totals]


class RequestStat(Base):
    __tablename__ = "request_stats"

    # 60 (one process's minute) or 3600 (an hour of every process, rolled up).
    resolution: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    period_start: Mapped[datetime] = mapped_column(primary_key=True)
    method: Mapped[str] = mapped_column(String(10), primary_key=True)
    route: Mapped[str] = mapped_column(String(200), primary_key=True)
    source: Mapped[str] = mapped_column(String(80), primary_key=True)
    count: Mapped[int] = mapped_column(Integer)
    errors_4xx: Mapped[int] = mapped_column(Integer)
    errors_5xx: Mapped[int] = mapped_column(Integer)
    sketch: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Of errors_4xx, the 429 refusals (added by migration 0011).
    rate_limited: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))


def start_of(units: int, size: int) -> datetime:
    """The start of minute (``size`` 60) or hour (3600) number ``units`` since the epoch."""
    return datetime.fromtimestamp(units * size, tz=UTC)


def minute_of(at: datetime) -> int:
    return int(at.timestamp() // MINUTE)


class StatsStore(abc.ABC):
    """Where the minutes live is the subclass's business (:meth:`flush`, :meth:`minutes`);
    hours are rows in ``request_stats`` for both, read and written in the caller's
    session, whose transaction the caller owns."""

    @abc.abstractmethod
    async def flush(self, stats: RequestStats) -> int:
        """Store what this process recorded since its last successful flush; how many
        (minute, method, route) cells were written. Raises when the store is away: the
        next flush writes the same changes (and those made since), never twice."""

    @abc.abstractmethod
    async def minutes(self, session: AsyncSession, first: int, last: int) -> Merged:
        """Every process's minutes ``first`` to ``last`` (minute numbers, inclusive),
        merged per (method, route)."""

    async def window(self, session: AsyncSession, since: datetime, now: datetime) -> Merged:
        """Per (method, route), the minutes from the one ``since`` falls in up to the one
        of ``now``, merged: the recent figures the alert rules watch. Minutes only, so
        ``since`` must lie within the last 25 hours."""
        return await self.minutes(session, minute_of(since), minute_of(now))

    async def roll_up(self, session: AsyncSession, now: datetime, *, hours: int = 2) -> int:
        """Merge the minutes of the last ``hours`` complete hours into hour rows (again
        if they exist: a minute written late is then counted, and a second run writes
        the same rows), and drop rows past their retention. How many hour rows were written."""
        current_hour = int(now.timestamp() // HOUR)
        written = 0
        for hour in range(current_hour - hours, current_hour):
            first = hour * MINUTES_PER_HOUR
            merged = await self.minutes(session, first, first + MINUTES_PER_HOUR - 1)
            if merged:
                start = start_of(hour, HOUR)
                await upsert(session, [_hour_row(start, key, totals) for key, totals in merged.items()])
                written += len(merged)
        # Minute rows too: the database store's, and any left from before a switch to Redis.
        for resolution, kept in ((MINUTE, MINUTES_KEPT), (HOUR, HOURS_KEPT)):
            await session.execute(
                delete(RequestStat).where(
                    RequestStat.resolution == resolution, RequestStat.period_start < now - kept
                )
            )
        return written

    async def summary(self, session: AsyncSession, period: str, now: datetime) -> dict[str, Any]:
        """Per route and overall, over the period up to ``now``: requests, requests per
        second, the share answered 4xx and 5xx, and latency percentiles in milliseconds."""
        since = now - PERIODS[period]
        hour_rows = list(
            await session.scalars(
                select(RequestStat).where(
                    RequestStat.resolution == HOUR,
                    RequestStat.period_start >= since,
                    RequestStat.period_start <= now,
                )
            )
        )
        merged = _merge(hour_rows)
        # Minutes that start within the period and are not in a rolled-up hour.
        first_minute, last_minute = math.ceil(since.timestamp() / MINUTE), minute_of(now)
        ranges = [(first_minute, last_minute)]
        if hour_rows:
            first_hour = minute_of(min(row.period_start for row in hour_rows))
            after_hours = minute_of(max(row.period_start for row in hour_rows)) + MINUTES_PER_HOUR
            ranges = [(first_minute, first_hour - 1), (after_hours, last_minute)]
        for first, last in ranges:
            if first <= last:
                _merge_into(merged, await self.minutes(session, first, last))
        overall = Totals()
        for totals in merged.values():
            overall.merge(totals)
        seconds = PERIODS[period].total_seconds()
        routes = sorted(merged.items(), key=lambda item: (-item[1].count, item[0]))
        return {
            "period": period,
            "since": since,
            "until": now,
            "overall": _render(overall, seconds),
            "routes": [
                {"method": method, "route": route, **_render(totals, seconds)}
                for (method, route), totals in routes
            ],
        }


class DatabaseStatsStore(StatsStore):
    """Minutes as rows in ``request_stats``, one per process, route and minute."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def flush(self, stats: RequestStats) -> int:
        rows = stats.pending()
        if not rows:
            return 0
        async with self.db.writer() as session:
            await upsert(
                session,
                [
                    {
                        "resolution": MINUTE,
                        "period_start": start_of(row.minute, MINUTE),
                        "method": row.method,
                        "route": row.route[:ROUTE_LENGTH],
                        "source": stats.source,
                        "count": row.count,
                        "errors_4xx": row.errors_4xx,
                        "errors_5xx": row.errors_5xx,
                        "rate_limited": row.rate_limited,
                        "sketch": row.sketch,
                    }
                    for row in rows
                ],
            )
            await session.commit()
        stats.written(rows)
        return len(rows)

    async def minutes(self, session: AsyncSession, first: int, last: int) -> Merged:
        rows = await session.scalars(
            select(RequestStat).where(
                RequestStat.resolution == MINUTE,
                RequestStat.period_start >= start_of(first, MINUTE),
                RequestStat.period_start < start_of(last + 1, MINUTE),
            )
        )
        return _merge(rows)


async def upsert(session: AsyncSession, values: list[dict[str, Any]]) -> None:
    """Insert ``request_stats`` rows, replacing the figures of those that exist."""
    statement = insert_for(session, RequestStat).values(values)
    excluded = statement.excluded
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["resolution", "period_start", "method", "route", "source"],
            set_={
                "count": excluded.count,
                "errors_4xx": excluded.errors_4xx,
                "errors_5xx": excluded.errors_5xx,
                "rate_limited": excluded.rate_limited,
                "sketch": excluded.sketch,
            },
        )
    )


def _merge(rows: Iterable[RequestStat]) -> Merged:
    merged: Merged = {}
    for row in rows:
        stored = Totals(
            row.count, row.errors_4xx, row.errors_5xx, LatencySketch.from_json(row.sketch), row.rate_limited
        )
        merged.setdefault((row.method, row.route), Totals()).merge(stored)
    return merged


def _merge_into(merged: Merged, more: Merged) -> None:
    for key, totals in more.items():
        merged.setdefault(key, Totals()).merge(totals)


def _hour_row(start: datetime, key: tuple[str, str], totals: Totals) -> dict[str, Any]:
    method, route = key
    return {
        "resolution": HOUR,
        "period_start": start,
        "method": method,
        "route": route,
        "source": ROLLED_UP,
        "count": totals.count,
        "errors_4xx": totals.errors_4xx,
        "errors_5xx": totals.errors_5xx,
        "rate_limited": totals.rate_limited,
        "sketch": totals.sketch.to_json(),
    }


def _render(totals: Totals, seconds: float) -> dict[str, Any]:
    count = totals.count

    def share(part: int) -> float:
        return round(part / count, 6) if count else 0.0

    def percentile(q: float) -> float | None:
        value = totals.sketch.quantile(q)
        return None if value is None else round(value, 3)

    return {
        "count": count,
        "requests_per_second": round(count / seconds, 6),
        "error_rate": share(totals.errors_5xx),
        "client_error_rate": share(totals.errors_4xx),
        "rate_limited": totals.rate_limited,
        "p50_ms": percentile(0.5),
        "p95_ms": percentile(0.95),
        "p99_ms": percentile(0.99),
    }
