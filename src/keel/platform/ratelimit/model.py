"""What a limit is, what the limiter decided, and the interface every limiter offers."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from keel.platform.http.errors import ServiceUnavailable

# Both stores do the arithmetic in exact integers held in IEEE doubles (Lua has no other
# number type): limit × period in µs must stay below 2**53.
MAX_CAPACITY = 2**53 - 1
_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")


@dataclass(frozen=True, slots=True)
class Limit:
    """At most ``limit`` units per ``period_seconds`` for one partition; a request costs ``cost``.

    ``name`` is the policy ("user", "login-ip", "products.create"): it is what the response
    headers show. ``key`` is the partition, who is counted ("u:42", "ip:203.0.113.9"): it
    stays server-side. A quota such as one product per two hours is ``Limit(…, 1, 7200)``.
    ``cost=0`` reads the figures without charging anything; a negative cost gives units
    back (see :func:`refund`).
    """

    name: str
    key: str
    limit: int
    period_seconds: float
    cost: int = 1
    # Derived once: the limiters read them several times per request.
    period_us: int = field(init=False, repr=False, compare=False)
    # Where the state lives. The figures are part of it: the stored state only means
    # something for one (limit, period), so a changed policy or plan starts afresh.
    bucket: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "period_us", round(self.period_seconds * 1_000_000))
        object.__setattr__(self, "bucket", f"{self.name}:{self.limit}:{self.period_us}:{self.key}")
        if not _NAME.fullmatch(self.name):
            raise ValueError(f"limit name {self.name!r} must be 1..64 of A-Z a-z 0-9 . _ -")
        if self.limit < 1:
            raise ValueError(f"limit {self.name}: limit must be >= 1, got {self.limit}")
        if self.period_us < 1:
            raise ValueError(f"limit {self.name}: period_seconds must be >= 1 µs, got {self.period_seconds}")
        if not -self.limit <= self.cost <= self.limit:
            raise ValueError(f"limit {self.name}: cost must be within ±{self.limit}, got {self.cost}")
        if self.limit * self.period_us > MAX_CAPACITY:
            raise ValueError(f"limit {self.name}: limit × period in µs must stay below 2**53")


@dataclass(frozen=True, slots=True)
class Decision:
    """One limit's verdict. Durations are in seconds.

    ``remaining`` counts cost-1 requests still allowed now; ``reset_after`` is the time until
    the bucket is full again; ``retry_after`` the wait before this request would pass (0 when
    it passed). When the request as a whole is refused nothing is charged, so a limit that
    would have passed reports its figures as they stand.
    """

    name: str
    limit: int
    period_seconds: float
    allowed: bool
    remaining: int
    reset_after: float
    retry_after: float


@dataclass(frozen=True, slots=True)
class Outcome:
    """All the limits that applied to one request, decided together: all charged or none."""

    allowed: bool
    decisions: tuple[Decision, ...]

    @property
    def refused(self) -> tuple[Decision, ...]:
        return tuple(decision for decision in self.decisions if not decision.allowed)

    @property
    def retry_after(self) -> float:
        """Seconds until every refusing limit would let this request through."""
        return max((decision.retry_after for decision in self.decisions if not decision.allowed), default=0.0)

    def most_restrictive(self) -> Decision | None:
        """The decision the client should heed: the longest refusal, else the limit closest
        to exhaustion (fewest remaining, then longest until full)."""
        return max(self.decisions, key=restrictiveness, default=None)


def restrictiveness(decision: Decision) -> tuple[bool, float, int, float]:
    """Sort key, greatest = most restrictive: refused before allowed, then the longer wait,
    then fewer remaining, then longer until full."""
    return (not decision.allowed, decision.retry_after, -decision.remaining, decision.reset_after)


class Limiter(Protocol):
    async def hit(self, limits: Sequence[Limit]) -> Outcome:
        """Charge every limit in one atomic step if all of them allow it, else charge none."""
        ...


def refunds(limits: Sequence[Limit]) -> list[Limit]:
    """The limits that give back what ``limits`` charged: hit with these to undo a charge
    whose request did not get what it paid for (a creation that failed validation)."""
    return [
        Limit(limit.name, limit.key, limit.limit, limit.period_seconds, cost=-limit.cost)
        for limit in limits
        if limit.cost > 0
    ]


class LimiterUnavailable(ServiceUnavailable):
    """The shared limiter is unreachable and the caller asked to fail closed."""

    default_message = "Rate limiting is temporarily unavailable; retry shortly."


def check_buckets(limits: Sequence[Limit]) -> None:
    # Two limits on one bucket in one request would each read the state before either
    # writes it, so the second would not see the first's charge.
    if len({limit.bucket for limit in limits}) != len(limits):
        raise ValueError("each limit in one hit needs its own bucket (name, figures and key)")


def decision_from(
    limit: Limit, allowed: bool, remaining: int, reset_after_us: int, retry_after_us: int
) -> Decision:
    return Decision(
        name=limit.name,
        limit=limit.limit,
        period_seconds=limit.period_seconds,
        allowed=allowed,
        remaining=remaining,
        reset_after=reset_after_us / 1_000_000,
        retry_after=retry_after_us / 1_000_000,
    )
