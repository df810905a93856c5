"""The in-process limiter: the embedded mode's, and the distributed mode's while Redis is away."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

from keel.platform.ratelimit.model import Limit, Outcome, check_buckets, decision_from


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


class MemoryLimiter:
    """GCRA with the same arithmetic as ``gcra.lua`` (read that file's header first).

    Each bucket is ``(stored_at_us, debt, drained_at_us)``, kept in order of last charge.
    Past ``max_keys`` the least recently charged buckets go first; forgetting a bucket that
    has not drained yet forgives its debt, the price of a bound on memory.

    ``hit`` never awaits, so on one event loop it is atomic without a lock. It is not
    thread-safe.
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be >= 1")
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[int, int, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    async def hit(self, limits: Sequence[Limit]) -> Outcome:
        return self.hit_now(limits)

    def hit_now(self, limits: Sequence[Limit]) -> Outcome:
        check_buckets(limits)
        now = round(self._clock() * 1_000_000)
        debts: list[int] = []
        charged: list[int] = []
        all_allowed = True
        for limit in limits:
            period = limit.period_us
            debt = 0
            stored = self._buckets.get(limit.bucket)
            if stored is not None:
                elapsed = now - stored[0]
                if elapsed >= period:
                    debt = 0
                elif elapsed > 0:
                    debt = max(0, stored[1] - elapsed * limit.limit)
                else:
                    debt = stored[1]
            debts.append(debt)
            charged.append(max(0, debt + limit.cost * period))
            if charged[-1] > limit.limit * period:
                all_allowed = False

        decisions = []
        for limit, debt, after in zip(limits, debts, charged, strict=True):
            period = limit.period_us
            capacity = limit.limit * period
            held = after if all_allowed else debt
            drains_in = _ceil_div(held, limit.limit)
            if all_allowed and held > 0:
                self._store(limit.bucket, (now, held, now + drains_in), now)
            elif all_allowed:
                self._buckets.pop(limit.bucket, None)
            allowed = after <= capacity
            decisions.append(
                decision_from(
                    limit,
                    allowed,
                    remaining=(capacity - held) // period,
                    reset_after_us=drains_in,
                    retry_after_us=0 if allowed else _ceil_div(after - capacity, limit.limit),
                )
            )
        return Outcome(allowed=all_allowed, decisions=tuple(decisions))

    def _store(self, bucket: str, state: tuple[int, int, int], now: int) -> None:
        self._buckets[bucket] = state
        self._buckets.move_to_end(bucket)
        # The oldest charges sit at the front; those that have drained are free to drop.
        buckets = self._buckets
        while buckets:
            oldest = next(iter(buckets.values()))
            if oldest[2] > now:
                break
            buckets.popitem(last=False)
        while len(buckets) > self._max_keys:
            buckets.popitem(last=False)
