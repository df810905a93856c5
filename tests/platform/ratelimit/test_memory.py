"""The in-memory limiter: exact on a fake clock, bounded in size; and what a Limit accepts."""

from __future__ import annotations

import pytest

from keel.platform.ratelimit import Limit, MemoryLimiter
from tests.platform.ratelimit.conftest import FakeClock


async def test_a_quota_of_one_per_two_hours() -> None:
    clock = FakeClock()
    limiter = MemoryLimiter(clock=clock)
    quota = Limit("products.create", "u:1", 1, 7200)
    assert (await limiter.hit([quota])).allowed
    clock.advance(1800)
    refused = await limiter.hit([quota])
    assert not refused.allowed
    assert refused.retry_after == 5400.0
    clock.advance(5400)
    assert (await limiter.hit([quota])).allowed


async def test_the_figures_are_exact_where_the_share_is_not_a_whole_microsecond() -> None:
    clock = FakeClock()
    limiter = MemoryLimiter(clock=clock)
    limit = Limit("user", "u:1", 7, 1)  # one share is 142857.142… µs
    assert all([(await limiter.hit([limit])).allowed for _ in range(7)])
    refused = await limiter.hit([limit])
    assert refused.retry_after == 0.142858  # rounded up to the microsecond
    clock.advance(0.142857)
    assert not (await limiter.hit([limit])).allowed
    clock.advance(0.000001)
    assert (await limiter.hit([limit])).allowed


async def test_the_number_of_buckets_is_bounded_least_recently_charged_first() -> None:
    limiter = MemoryLimiter(clock=FakeClock(), max_keys=3)
    for user in range(5):
        await limiter.hit([Limit("user", f"u:{user}", 1, 60)])
    assert len(limiter) == 3
    # The oldest buckets were forgotten (their debt forgiven); the newest still refuse.
    assert (await limiter.hit([Limit("user", "u:0", 1, 60)])).allowed
    assert not (await limiter.hit([Limit("user", "u:4", 1, 60)])).allowed


async def test_drained_buckets_are_dropped() -> None:
    clock = FakeClock()
    limiter = MemoryLimiter(clock=clock)
    for user in range(100):
        await limiter.hit([Limit("user", f"u:{user}", 10, 60)])
    assert len(limiter) == 100
    clock.advance(6)  # every one-request charge has drained
    await limiter.hit([Limit("user", "u:new", 10, 60)])
    assert len(limiter) == 1


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("", "k", 1, 60), "name"),
        (("has space", "k", 1, 60), "name"),
        (('quo"te', "k", 1, 60), "name"),
        (("user", "k", 0, 60), "limit must be"),
        (("user", "k", 5, 0), "period_seconds"),
        (("user", "k", 5, 60, 6), "cost"),
        (("user", "k", 5, 60, -6), "cost"),
        (("user", "k", 200_000, 86_400), "2\\*\\*53"),
    ],
)
def test_a_limit_refuses_what_it_cannot_enforce_or_render(
    arguments: tuple[object, ...], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Limit(*arguments)  # type: ignore[arg-type]
