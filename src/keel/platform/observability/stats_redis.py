"""Request statistics' minutes in Redis (``KEEL_STATS_BACKEND=redis``, the default with
``KEEL_REDIS_URL``); their hours stay in the database.

Why: the database store has every process upsert one row per route and minute on each
flush (its running totals, sketch JSON included: an upsert per cell), and every read
merges one row per process. Here a flush is one round trip that adds what changed since
the last one (``HINCRBY``) to one hash per minute shared by every replica: replicas merge
by addition in Redis, a minute is one hash however many processes wrote it, Redis expires
it, and the database keeps only the hours the roll-up writes.

Layout: ``<prefix>stats:<minute>`` (minutes since the epoch), expiring 25 hours after its
last write, with fields ``<method> <route>|<figure>``; figures ``count``, ``4xx``,
``429``, ``5xx`` and the sketch's ``z`` and ``b:<bucket>``
(:meth:`~.sketch.LatencySketch.fields`).

Each change is added exactly once. A flush's changes form a batch with an id, applied by
a short Lua script that does nothing when the process's last applied batch
(``<prefix>stats:batch:<source>``) has that id. A batch whose answer never came (a
timeout, a dropped connection) is in doubt: it is resent unchanged by the next flush,
before anything recorded since, and its changes count as written only once Redis has
answered. A MULTI/EXEC pipeline would be atomic but not idempotent: when the reply to
EXEC is lost, redis-py's retry (``connect_redis`` retries a broken connection once) or
the next flush would add the batch twice.
"""

from __future__ import annotations

import asyncio
import uuid
import weakref
from dataclasses import dataclass, field

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from keel.platform.http.errors import ServiceUnavailable
from keel.platform.observability.sketch import LatencySketch
from keel.platform.observability.stats import MINUTE, RequestStats, StatRow, Totals
from keel.platform.observability.stats_store import MINUTES_KEPT, ROUTE_LENGTH, Merged, StatsStore

KEPT_SECONDS = int(MINUTES_KEPT.total_seconds())
_KEPT_MINUTES = KEPT_SECONDS // MINUTE
# Minute hashes read per round trip (a day without roll-ups is 1,440).
_READ_CHUNK = 500

# KEYS: the batch marker, then one hash per minute. ARGV: the batch id, the TTL, then
# per hash the number of its fields followed by (field, increment) pairs.
_APPLY = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return 0 end
local at = 3
for i = 2, #KEYS do
  local fields = tonumber(ARGV[at])
  at = at + 1
  for _ = 1, fields do
    redis.call('HINCRBY', KEYS[i], ARGV[at], ARGV[at + 1])
    at = at + 2
  end
  redis.call('EXPIRE', KEYS[i], ARGV[2])
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
"""

Cell = tuple[int, str, str]  # minute, method, route


@dataclass(frozen=True, slots=True)
class _Batch:
    id: str
    rows: list[StatRow]
    # The cells' running figures this batch brings Redis up to.
    figures: dict[Cell, dict[str, int]]
    # Per minute, per field: what to add.
    changes: dict[int, dict[str, int]]


@dataclass(slots=True)
class _Progress:
    """One process's running figures known to be in Redis, and its batch in doubt."""

    applied: dict[Cell, dict[str, int]] = field(default_factory=dict)
    in_doubt: _Batch | None = None
    # One flush at a time (the periodic one may still run when shutdown flushes).
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class RedisStatsStore(StatsStore):
    def __init__(self, redis: Redis, *, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self._apply_script = redis.register_script(_APPLY)
        # Per RequestStats (one per process; tests run several): forgotten with it.
        self._progress: weakref.WeakKeyDictionary[RequestStats, _Progress] = weakref.WeakKeyDictionary()

    def minute_key(self, minute: int) -> str:
        return f"{self.prefix}stats:{minute}"

    async def flush(self, stats: RequestStats) -> int:
        progress = self._progress.setdefault(stats, _Progress())
        async with progress.lock:
            written = 0
            if progress.in_doubt is not None:
                written += await self._apply(stats, progress, progress.in_doubt)
            rows = stats.pending()
            if rows:
                written += await self._apply(stats, progress, _batch(rows, progress.applied))
            return written

    async def _apply(self, stats: RequestStats, progress: _Progress, batch: _Batch) -> int:
        progress.in_doubt = batch
        keys = [f"{self.prefix}stats:batch:{stats.source}"]
        args: list[str | int] = [batch.id, KEPT_SECONDS]
        for minute, changes in batch.changes.items():
            keys.append(self.minute_key(minute))
            args.append(len(changes))
            for name, increment in changes.items():
                args += (name, increment)
        await self._apply_script(keys=keys, args=args)
        progress.in_doubt = None
        progress.applied.update(batch.figures)
        stats.written(batch.rows)
        # Cells of minutes before the batch's newest are over, and RequestStats has just
        # forgotten them (written and past): so do we.
        newest = max(row.minute for row in batch.rows)
        for cell in [cell for cell in progress.applied if cell[0] < newest]:
            del progress.applied[cell]
        return len(batch.rows)

    async def minutes(self, session: AsyncSession, first: int, last: int) -> Merged:
        # Older hashes have expired: no need to ask for them.
        first = max(first, last - _KEPT_MINUTES)
        figures: dict[tuple[str, str], dict[str, int]] = {}
        try:
            for chunk in range(first, last + 1, _READ_CHUNK):
                pipe = self.redis.pipeline(transaction=False)
                for minute in range(chunk, min(chunk + _READ_CHUNK, last + 1)):
                    pipe.hgetall(self.minute_key(minute))
                for stored in await pipe.execute():
                    _add_fields(figures, stored)
        except RedisError as exc:
            raise ServiceUnavailable("Redis, which holds the request statistics, is not answering.") from exc
        return {key: _totals(values) for key, values in figures.items()}


def _figures(row: StatRow) -> dict[str, int]:
    figures = {"count": row.count, "4xx": row.errors_4xx, "429": row.rate_limited, "5xx": row.errors_5xx}
    figures.update(LatencySketch.from_json(row.sketch).fields())
    return figures


def _batch(rows: list[StatRow], applied: dict[Cell, dict[str, int]]) -> _Batch:
    figures: dict[Cell, dict[str, int]] = {}
    changes: dict[int, dict[str, int]] = {}
    for row in rows:
        cell = (row.minute, row.method, row.route)
        now = figures[cell] = _figures(row)
        before = applied.get(cell, {})
        if now["count"] < before.get("count", 0):  # a cell started afresh (the clock went back)
            before = {}
        prefix = f"{row.method} {row.route[:ROUTE_LENGTH]}|"
        minute = changes.setdefault(row.minute, {})
        for name, value in now.items():
            if value != before.get(name, 0):
                minute[prefix + name] = value - before.get(name, 0)
    return _Batch(uuid.uuid4().hex, rows, figures, {minute: c for minute, c in changes.items() if c})


def _add_fields(figures: dict[tuple[str, str], dict[str, int]], stored: dict[bytes, bytes]) -> None:
    for raw_name, raw_value in stored.items():
        name = raw_name.decode() if isinstance(raw_name, bytes) else raw_name
        # The figure's name has no "|" and the method no space; the route may have both.
        head, figure = name.rsplit("|", 1)
        method, route = head.split(" ", 1)
        values = figures.setdefault((method, route), {})
        values[figure] = values.get(figure, 0) + int(raw_value)


def _totals(figures: dict[str, int]) -> Totals:
    return Totals(
        count=figures.get("count", 0),
        errors_4xx=figures.get("4xx", 0),
        errors_5xx=figures.get("5xx", 0),
        sketch=LatencySketch.from_fields(figures),
        rate_limited=figures.get("429", 0),
    )
