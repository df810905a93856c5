"""Response headers rendered from an outcome: exact strings."""

from __future__ import annotations

from keel.platform.ratelimit import Decision, Outcome, rate_limit_headers

NOW = 1_760_000_000.25


def decision(
    name: str,
    limit: int,
    period: float,
    remaining: int,
    reset_after: float,
    *,
    retry_after: float = 0.0,
) -> Decision:
    return Decision(
        name=name,
        limit=limit,
        period_seconds=period,
        allowed=retry_after == 0.0,
        remaining=remaining,
        reset_after=reset_after,
        retry_after=retry_after,
    )


def test_allowed_headers_follow_the_limit_closest_to_exhaustion() -> None:
    outcome = Outcome(
        allowed=True,
        decisions=(decision("global", 1000, 60, 990, 0.6), decision("user", 100, 60, 42, 34.8)),
    )
    assert rate_limit_headers(outcome, now=NOW) == [
        ("X-RateLimit-Limit", "100"),
        ("X-RateLimit-Remaining", "42"),
        ("X-RateLimit-Reset", "1760000036"),  # ceil(now + 34.8)
        ("RateLimit-Policy", '"global";q=1000;w=60, "user";q=100;w=60'),
        ("RateLimit", '"global";r=990;t=1, "user";r=42;t=35'),
    ]


def test_refused_headers_carry_retry_after_rounded_up() -> None:
    outcome = Outcome(
        allowed=False,
        decisions=(
            decision("user", 100, 60, 57, 25.8),
            decision("products.create", 1, 7200, 0, 7199.2, retry_after=7199.2),
        ),
    )
    assert rate_limit_headers(outcome, now=NOW) == [
        ("X-RateLimit-Limit", "1"),
        ("X-RateLimit-Remaining", "0"),
        ("X-RateLimit-Reset", "1760007200"),  # ceil(now + 7199.2)
        ("RateLimit-Policy", '"user";q=100;w=60, "products.create";q=1;w=7200'),
        ("RateLimit", '"user";r=57;t=26, "products.create";r=0;t=7200'),
        ("Retry-After", "7200"),
    ]


def test_retry_after_is_at_least_one_second() -> None:
    outcome = Outcome(allowed=False, decisions=(decision("burst", 2, 1, 0, 0.9, retry_after=0.004),))
    headers = dict(rate_limit_headers(outcome, now=NOW))
    assert headers["Retry-After"] == "1"
    assert headers["RateLimit"] == '"burst";r=0;t=1'
    assert headers["X-RateLimit-Reset"] == "1760000001"


def test_the_window_of_a_refused_limit_ends_at_retry_after_not_at_full_reset() -> None:
    # The draft: a Retry-After must not point before the end of the effective window.
    outcome = Outcome(allowed=False, decisions=(decision("user", 10, 60, 0, 59.5, retry_after=5.5),))
    headers = dict(rate_limit_headers(outcome, now=NOW))
    assert headers["RateLimit"] == '"user";r=0;t=6'
    assert headers["Retry-After"] == "6"


def test_one_item_per_policy_name_the_most_restrictive() -> None:
    outcome = Outcome(
        allowed=True,
        decisions=(decision("login", 5, 60, 4, 12.0), decision("login", 5, 60, 1, 48.0)),
    )
    headers = dict(rate_limit_headers(outcome, now=NOW))
    assert headers["RateLimit-Policy"] == '"login";q=5;w=60'
    assert headers["RateLimit"] == '"login";r=1;t=48'


def test_a_sub_second_window_is_shown_as_one_second() -> None:
    outcome = Outcome(allowed=True, decisions=(decision("burst", 5, 0.5, 4, 0.1),))
    assert dict(rate_limit_headers(outcome, now=NOW))["RateLimit-Policy"] == '"burst";q=5;w=1'


def test_no_limits_no_headers() -> None:
    assert rate_limit_headers(Outcome(allowed=True, decisions=()), now=NOW) == []
