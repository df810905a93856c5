"""The shared limiter: every limit of a request decided in one Redis round trip."""

from __future__ import annotations

from collections.abc import Sequence
from importlib.resources import files

from redis.asyncio import Redis

from keel.platform.ratelimit.model import Limit, Outcome, check_buckets, decision_from

# GCRA rather than a sliding-window counter: one small key per limit (its theoretical
# arrival time), O(1) work, exactly N allowed then the N+1st refused, and an exact
# Retry-After (when the TAT leaves room again) with no window-edge bursts to explain.
# The `limits` library was not used: it costs 2-3 round trips per limit and cannot decide
# stacked limits together, all or nothing.
SCRIPT = files("keel.platform.ratelimit").joinpath("gcra.lua").read_text(encoding="utf-8")


class RedisLimiter:
    """Runs ``gcra.lua`` with EVALSHA: the script is sent once per server, not per call.

    redis-py's registered script runs EVALSHA and, on NOSCRIPT (first use, a restart,
    SCRIPT FLUSH), loads the script and runs EVALSHA again. Keys are ``prefix`` + the
    limit's bucket. Redis errors propagate; ``FallbackLimiter`` decides what they mean.
    Give it a client from ``connect_redis`` so an outage costs one timeout.
    """

    def __init__(self, redis: Redis, *, prefix: str) -> None:
        self._prefix = prefix
        self._script = redis.register_script(SCRIPT)

    def key_for(self, limit: Limit) -> str:
        return self._prefix + limit.bucket

    async def hit(self, limits: Sequence[Limit]) -> Outcome:
        if not limits:
            return Outcome(allowed=True, decisions=())
        check_buckets(limits)
        keys = [self._prefix + limit.bucket for limit in limits]
        args: list[int] = []
        for limit in limits:
            args += (limit.limit, limit.period_us, limit.cost)
        reply = await self._script(keys=keys, args=args)
        decisions = tuple(
            decision_from(
                limit,
                allowed=reply[i] == 1,
                remaining=reply[i + 1],
                reset_after_us=reply[i + 2],
                retry_after_us=reply[i + 3],
            )
            for limit, i in zip(limits, range(1, len(reply), 4), strict=True)
        )
        return Outcome(allowed=reply[0] == 1, decisions=decisions)
