"""Per-minute request statistics of this process, for ``GET /metrics/summary``.

Per route template and method, per wall-clock minute: how many requests, how many
answered 4xx (of which how many 429) and 5xx, and a latency sketch
(:class:`~.sketch.LatencySketch`, mergeable across minutes and processes). Recording
is a few dict operations on the request path; every few seconds the store
(:mod:`.stats_store`) takes what changed: rows per process (``source``) in the database,
merged when read, or increments to Redis hashes shared by every replica
(:mod:`.stats_redis`).

Responses streamed in several parts (exports, downloads, event streams) are counted but
not timed: their duration is the client's reading speed, not the server's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from keel.platform.observability.sketch import LatencySketch

MINUTE = 60


@dataclass(slots=True)
class Totals:
    """Requests, how many answered 4xx and 5xx, and their latencies (ms). ``rate_limited``
    (429 answers) is a part of ``errors_4xx``, kept apart for the rate-limit alert."""

    count: int = 0
    errors_4xx: int = 0
    errors_5xx: int = 0
    sketch: LatencySketch = field(default_factory=LatencySketch)
    rate_limited: int = 0

    def merge(self, other: Totals) -> None:
        self.count += other.count
        self.errors_4xx += other.errors_4xx
        self.errors_5xx += other.errors_5xx
        self.rate_limited += other.rate_limited
        self.sketch.merge(other.sketch)


@dataclass(slots=True)
class _Cell(Totals):
    # Bumped by every request; what was last written is ``written``.
    version: int = 0
    written: int = 0


@dataclass(frozen=True, slots=True)
class StatRow:
    """One minute of one route, as this process has seen it so far (cumulative)."""

    minute: int  # Unix time of the minute's start, in minutes
    method: str
    route: str
    count: int
    errors_4xx: int
    errors_5xx: int
    sketch: dict[str, object]
    version: int
    rate_limited: int = 0


class RequestStats:
    def __init__(self, source: str, clock: Callable[[], float] = time.time) -> None:
        self.source = source
        self._clock = clock
        self._cells: dict[tuple[int, str, str], _Cell] = {}

    def record(self, method: str, route: str, status: int, seconds: float, *, timed: bool = True) -> None:
        key = (int(self._clock() // MINUTE), method, route)
        cell = self._cells.get(key)
        if cell is None:
            cell = self._cells[key] = _Cell()
        cell.count += 1
        if status >= 500:
            cell.errors_5xx += 1
        elif status >= 400:
            cell.errors_4xx += 1
            if status == 429:
                cell.rate_limited += 1
        if timed:
            cell.sketch.add(seconds * 1000)
        cell.version += 1

    def pending(self) -> list[StatRow]:
        """The cells changed since they were last written, as rows to write."""
        return [
            StatRow(
                minute,
                method,
                route,
                cell.count,
                cell.errors_4xx,
                cell.errors_5xx,
                cell.sketch.to_json(),
                cell.version,
                cell.rate_limited,
            )
            for (minute, method, route), cell in self._cells.items()
            if cell.version != cell.written
        ]

    def written(self, rows: list[StatRow]) -> None:
        """These rows are stored: past minutes that changed no further are forgotten."""
        for row in rows:
            cell = self._cells.get((row.minute, row.method, row.route))
            if cell is not None:
                cell.written = row.version
        current = int(self._clock() // MINUTE)
        done = [key for key, cell in self._cells.items() if key[0] < current and cell.version == cell.written]
        for key in done:
            del self._cells[key]
