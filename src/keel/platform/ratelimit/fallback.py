"""Redis when it answers, this process's memory when it does not."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import structlog
from redis.exceptions import RedisError

from keel.platform.ratelimit.memory import MemoryLimiter
from keel.platform.ratelimit.model import Limit, Limiter, LimiterUnavailable, Outcome

log = structlog.get_logger("keel.ratelimit")

# redis-py raises its own ConnectionError/TimeoutError (RedisError subclasses); a few
# socket paths surface as OSError or the builtin TimeoutError.
REDIS_ERRORS = (RedisError, OSError, TimeoutError)


class FallbackLimiter:
    """Fails open to local enforcement: while Redis is unreachable each replica limits on
    its own (so N replicas let through up to N times a limit), and reports ``degraded``.

    After a failure Redis is left alone for ``probe_interval`` seconds, then one request
    probes it: an outage costs one socket timeout per interval, not one per request.
    ``on_fallback`` is called for every request answered from memory (bind a counter);
    the outage is logged once when it starts and once when it ends.
    """

    def __init__(
        self,
        primary: Limiter,
        fallback: MemoryLimiter,
        *,
        on_fallback: Callable[[], None] | None = None,
        probe_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._primary = primary
        self._fallback = fallback
        self._on_fallback = on_fallback
        self._probe_interval = probe_interval
        self._clock = clock
        self._down_since: float | None = None
        self._probe_at = 0.0

    @property
    def degraded(self) -> bool:
        return self._down_since is not None

    async def hit(self, limits: Sequence[Limit], *, fail_closed: bool = False) -> Outcome:
        """``fail_closed=True`` raises ``LimiterUnavailable`` (a 503) instead of falling back:
        for routes where a per-replica limit is too weak, such as login."""
        if self._down_since is not None:
            now = self._clock()
            if now < self._probe_at:
                return self._unavailable(limits, fail_closed)
            self._probe_at = now + self._probe_interval  # requests arriving meanwhile do not probe too
        try:
            outcome = await self._primary.hit(limits)
        except REDIS_ERRORS as exc:
            self._went_down(exc)
            return self._unavailable(limits, fail_closed)
        if self._down_since is not None:
            log.info("ratelimit.redis.recovered", outage_seconds=round(self._clock() - self._down_since, 3))
            self._down_since = None
        return outcome

    def _went_down(self, exc: BaseException) -> None:
        now = self._clock()
        self._probe_at = now + self._probe_interval
        if self._down_since is None:
            self._down_since = now
            log.warning("ratelimit.redis.unavailable", error_type=type(exc).__name__, error=str(exc))

    def _unavailable(self, limits: Sequence[Limit], fail_closed: bool) -> Outcome:
        if fail_closed:
            raise LimiterUnavailable
        if self._on_fallback is not None:
            self._on_fallback()
        return self._fallback.hit_now(limits)
