"""The semantics both stores share: run against the in-memory limiter and real Redis."""

from __future__ import annotations

import math

import pytest

from keel.platform.ratelimit import Limit
from keel.platform.ratelimit.model import refunds
from tests.platform.ratelimit.conftest import Store


async def test_n_allowed_then_the_next_refused(store: Store, key: str) -> None:
    limit = Limit("user", key, 5, 60)
    outcomes = [await store.limiter.hit([limit]) for _ in range(6)]
    assert [outcome.allowed for outcome in outcomes] == [True] * 5 + [False]
    refused = outcomes[-1].decisions[0]
    assert not refused.allowed
    assert refused.remaining == 0
    assert 11.9 < refused.retry_after <= 12.0  # one request's share of the period


async def test_remaining_falls_by_one_per_hit_and_reset_grows_by_one_share(store: Store, key: str) -> None:
    limit = Limit("user", key, 10, 60)
    decisions = [(await store.limiter.hit([limit])).decisions[0] for _ in range(3)]
    assert [decision.remaining for decision in decisions] == [9, 8, 7]
    assert [decision.retry_after for decision in decisions] == [0.0, 0.0, 0.0]
    for charged, decision in enumerate(decisions, start=1):
        # Full again once every charge (6 s each) has drained.
        assert 6 * charged - 0.1 < decision.reset_after <= 6 * charged
        assert decision.limit == 10
        assert decision.name == "user"


async def test_retry_after_is_neither_early_nor_late(store: Store, key: str) -> None:
    limit = Limit("burst", key, 2, 1)
    assert (await store.limiter.hit([limit])).allowed
    assert (await store.limiter.hit([limit])).allowed
    refused = await store.limiter.hit([limit])
    assert not refused.allowed
    assert 0.3 < refused.retry_after <= 0.5

    await store.wait(refused.retry_after - store.early)
    too_early = await store.limiter.hit([limit])
    assert not too_early.allowed
    assert 0 < too_early.retry_after <= store.early

    await store.wait(too_early.retry_after)
    on_time = await store.limiter.hit([limit])
    assert on_time.allowed
    assert on_time.decisions[0].remaining == 0


async def test_stacked_limits_the_tightest_refuses_and_none_is_charged(store: Store, key: str) -> None:
    tight = Limit("route", key, 2, 60)
    loose = Limit("user", key, 10, 60)
    for _ in range(2):
        assert (await store.limiter.hit([loose, tight])).allowed

    refused = await store.limiter.hit([loose, tight])
    assert not refused.allowed
    by_name = {decision.name: decision for decision in refused.decisions}
    assert not by_name["route"].allowed
    assert by_name["route"].remaining == 0
    assert by_name["user"].allowed  # it would have let the request through…
    assert by_name["user"].remaining == 8  # …and was not charged for the refused one
    assert by_name["user"].retry_after == 0.0
    assert refused.retry_after == by_name["route"].retry_after
    assert refused.most_restrictive() == by_name["route"]

    alone = await store.limiter.hit([loose])
    assert alone.decisions[0].remaining == 7


async def test_refusals_do_not_push_the_retry_further_away(store: Store, key: str) -> None:
    limit = Limit("route", key, 1, 60)
    assert (await store.limiter.hit([limit])).allowed
    waits = [(await store.limiter.hit([limit])).retry_after for _ in range(5)]
    assert waits == sorted(waits, reverse=True)
    assert waits[0] - waits[-1] < 1


async def test_a_cost_charges_that_many_units(store: Store, key: str) -> None:
    outcome = await store.limiter.hit([Limit("export", key, 10, 60, cost=3)])
    assert outcome.decisions[0].remaining == 7
    too_big = await store.limiter.hit([Limit("export", key, 10, 60, cost=8)])
    assert not too_big.allowed
    assert too_big.decisions[0].remaining == 7
    assert math.isclose(too_big.retry_after, 6.0, abs_tol=0.1)  # one unit short: one share


async def test_cost_zero_reads_without_charging(store: Store, key: str) -> None:
    assert (await store.limiter.hit([Limit("user", key, 10, 60)])).allowed
    for _ in range(3):
        peek = await store.limiter.hit([Limit("user", key, 10, 60, cost=0)])
        assert peek.allowed
        assert peek.decisions[0].remaining == 9


async def test_a_refund_gives_back_what_was_charged_and_never_more(store: Store, key: str) -> None:
    quota = Limit("products.create", key, 1, 7200)
    assert (await store.limiter.hit([quota])).allowed
    assert not (await store.limiter.hit([quota])).allowed
    refund = await store.limiter.hit(refunds([quota]))
    assert refund.allowed
    assert refund.decisions[0].remaining == 1
    # A second refund cannot bank credit beyond a full bucket.
    assert (await store.limiter.hit(refunds([quota]))).decisions[0].remaining == 1
    assert (await store.limiter.hit([quota])).allowed
    assert not (await store.limiter.hit([quota])).allowed


async def test_refunds_only_undo_charges(key: str) -> None:
    charged = [Limit("user", key, 10, 60), Limit("peek", key, 10, 60, cost=0)]
    assert [(limit.name, limit.cost) for limit in refunds(charged)] == [("user", -1)]


async def test_buckets_are_separate_per_key_and_per_policy(store: Store, key: str) -> None:
    assert (await store.limiter.hit([Limit("login-ip", key, 1, 60)])).allowed
    assert not (await store.limiter.hit([Limit("login-ip", key, 1, 60)])).allowed
    assert (await store.limiter.hit([Limit("login-ip", key + "-other", 1, 60)])).allowed
    assert (await store.limiter.hit([Limit("login-account", key, 1, 60)])).allowed
    # A changed policy (a plan upgrade) starts from a fresh bucket.
    assert (await store.limiter.hit([Limit("login-ip", key, 2, 60)])).allowed


async def test_no_limits_allow(store: Store) -> None:
    outcome = await store.limiter.hit([])
    assert outcome.allowed
    assert outcome.decisions == ()
    assert outcome.most_restrictive() is None
    assert outcome.retry_after == 0.0


async def test_one_bucket_twice_in_a_hit_is_a_programming_error(store: Store, key: str) -> None:
    with pytest.raises(ValueError, match="own bucket"):
        await store.limiter.hit([Limit("user", key, 10, 60), Limit("user", key, 10, 60)])
