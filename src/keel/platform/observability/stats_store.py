"""Request statistics in the database: written per process and minute, rolled up per
hour, and merged into the summary of a period.

Each process writes its own minute rows (``source`` = the process), replacing them with
its running totals, so a write never has to merge sketches in SQL. The hourly roll-up
merges an hour's minute rows from every process into one row (``source`` = ``*``).
Minutes are kept 25 hours and hours 8 days. A summary reads hour rows for the hours
that have been rolled up and minute rows after them, and merges them in Python: at most
one row per route and hour plus an hour or two of minutes.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import JSON, Integer, SmallInteger, String, delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from keel.platform.db.base import Base
from keel.platform.db.dialect import insert_for
from keel.platform.db.engine import Database
from keel.platform.observability.sketch import LatencySketch
from keel.platform.observability.stats import MINUTE, RequestStats, Totals

HOUR = 3600
ROLLED_UP = "*"
MINUTES_KEPT = timedelta(hours=25)
HOURS_KEPT = timedelta(days=8)
Period = Literal["1h", "24h", "7d"]
PERIODS: dict[str, timedelta] = {
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
}


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


def _start(units: int, size: int) -> datetime:
    return datetime.fromtimestamp(units * size, tz=UTC)


async def flush(db: Database, stats: RequestStats) -> int:
    """Write this process's changed minutes; how many rows were written."""
    rows = stats.pending()
    if not rows:
        return 0
    async with db.writer() as session:
        await _upsert(
            session,
            [
                {
                    "resolution": MINUTE,
                    "period_start": _start(row.minute, MINUTE),
                    "method": row.method,
                    "route": row.route[:200],
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


async def _upsert(session: AsyncSession, values: list[dict[str, Any]]) -> None:
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


def _merge(rows: Iterable[RequestStat]) -> dict[tuple[str, str], Totals]:
    merged: dict[tuple[str, str], Totals] = {}
    for row in rows:
        stored = Totals(
            row.count, row.errors_4xx, row.errors_5xx, LatencySketch.from_json(row.sketch), row.rate_limited
        )
        merged.setdefault((row.method, row.route), Totals()).merge(stored)
    return merged


async def roll_up(session: AsyncSession, now: datetime, *, hours: int = 2) -> int:
    """Merge the minute rows of the last ``hours`` complete hours into hour rows (again
    if they exist: a minute written late is then counted), and drop rows past their
    retention. How many hour rows were written."""
    current_hour = int(now.timestamp() // HOUR)
    written = 0
    for hour in range(current_hour - hours, current_hour):
        start, end = _start(hour, HOUR), _start(hour + 1, HOUR)
        minutes = await session.scalars(
            select(RequestStat).where(
                RequestStat.resolution == MINUTE,
                RequestStat.period_start >= start,
                RequestStat.period_start < end,
            )
        )
        merged = _merge(minutes)
        if merged:
            await _upsert(session, [_hour_row(start, key, totals) for key, totals in merged.items()])
            written += len(merged)
    for resolution, kept in ((MINUTE, MINUTES_KEPT), (HOUR, HOURS_KEPT)):
        await session.execute(
            delete(RequestStat).where(
                RequestStat.resolution == resolution, RequestStat.period_start < now - kept
            )
        )
    return written


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


async def window(session: AsyncSession, since: datetime) -> dict[tuple[str, str], Totals]:
    """Per (method, route), every process's minutes from the one ``since`` falls in
    onwards, merged: the recent figures the alert rules watch. Minute rows only, so
    ``since`` must lie within the last 25 hours."""
    first_minute = _start(int(since.timestamp() // MINUTE), MINUTE)
    rows = await session.scalars(
        select(RequestStat).where(RequestStat.resolution == MINUTE, RequestStat.period_start >= first_minute)
    )
    return _merge(rows)


async def summary(session: AsyncSession, period: str, now: datetime) -> dict[str, Any]:
    """Per route and overall, over the period up to ``now``: requests, requests per
    second, the share answered 4xx and 5xx, and latency percentiles in milliseconds."""
    since = now - PERIODS[period]
    in_period = RequestStat.period_start >= since
    bounds = select(func.min(RequestStat.period_start), func.max(RequestStat.period_start))
    rolled = (await session.execute(bounds.where(RequestStat.resolution == HOUR, in_period))).one()
    first: datetime | None = rolled[0]
    last: datetime | None = rolled[1]
    is_minute = RequestStat.resolution == MINUTE
    if first is None or last is None:
        wanted = is_minute & in_period
    else:
        # Rolled-up hours, and the minutes before and after them.
        before = in_period & (RequestStat.period_start < first)
        after = RequestStat.period_start >= last + timedelta(seconds=HOUR)
        wanted = ((RequestStat.resolution == HOUR) & in_period) | (is_minute & (before | after))
    rows = (await session.scalars(select(RequestStat).where(wanted))).all()
    merged = _merge(rows)
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
