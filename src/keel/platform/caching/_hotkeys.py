"""Request counts per key, bounded, for ``hottest(n)`` (what ``POST /cache/warm`` loads)."""

from __future__ import annotations

import heapq
from operator import itemgetter


class HotKeys:
    """Counts requests per key in a dict of at most ``2 × capacity`` keys.

    Past that, the ``capacity`` most requested keys are kept and their counts halved, so
    the work is O(log capacity) amortised per request and yesterday's favourites fade.
    An exact heavy-hitters sketch (space-saving) would need a linked structure per
    count; this is enough to pick what to warm.
    """

    def __init__(self, capacity: int = 10_000) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._capacity = capacity
        self._counts: dict[str, int] = {}

    def record(self, key: str) -> None:
        counts = self._counts
        counts[key] = counts.get(key, 0) + 1
        if len(counts) > 2 * self._capacity:
            self._prune()

    def top(self, n: int) -> list[str]:
        """Most requested first; ties in the order the keys were first seen."""
        if n <= 0:
            return []
        return [key for key, _ in heapq.nlargest(n, self._counts.items(), key=itemgetter(1))]

    def _prune(self) -> None:
        kept = heapq.nlargest(self._capacity, self._counts.items(), key=itemgetter(1))
        self._counts = {key: count // 2 for key, count in kept if count // 2 > 0}

    def __len__(self) -> int:
        return len(self._counts)
