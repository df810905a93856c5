"""Response headers for an outcome: the de facto X-RateLimit-* trio and the IETF fields.

The IETF fields follow draft-ietf-httpapi-ratelimit-headers (-11): structured-field lists
whose items are the policy names as strings, e.g.
``RateLimit-Policy: "user";q=100;w=60, "login-ip";q=5;w=60`` and
``RateLimit: "user";r=42;t=17, "login-ip";r=4;t=12``. Partition keys (who is counted) are
never shown.
"""

from __future__ import annotations

import math

from keel.platform.ratelimit.model import Decision, Outcome, restrictiveness


def _wait(decision: Decision) -> float:
    # The draft's effective window `t`: for a refused limit, the wait before it lets the
    # request through, so a Retry-After never points before the end of that window;
    # otherwise the time until the bucket is full again.
    return decision.reset_after if decision.allowed else decision.retry_after


def _per_policy(outcome: Outcome) -> list[Decision]:
    # One item per policy name (the draft forbids repeats): the most restrictive wins.
    chosen: dict[str, Decision] = {}
    for decision in outcome.decisions:
        kept = chosen.get(decision.name)
        if kept is None or restrictiveness(decision) > restrictiveness(kept):
            chosen[decision.name] = decision
    return list(chosen.values())


def rate_limit_headers(outcome: Outcome, *, now: float) -> list[tuple[str, str]]:
    """Headers for ``outcome``; ``now`` is the wall clock (epoch seconds) for X-RateLimit-Reset."""
    heeded = outcome.most_restrictive()
    if heeded is None:
        return []
    policies = _per_policy(outcome)
    headers = [
        ("X-RateLimit-Limit", str(heeded.limit)),
        ("X-RateLimit-Remaining", str(heeded.remaining)),
        ("X-RateLimit-Reset", str(math.ceil(now + _wait(heeded)))),
        (
            "RateLimit-Policy",
            ", ".join(f'"{d.name}";q={d.limit};w={max(1, math.ceil(d.period_seconds))}' for d in policies),
        ),
        ("RateLimit", ", ".join(f'"{d.name}";r={d.remaining};t={math.ceil(_wait(d))}' for d in policies)),
    ]
    if not outcome.allowed:
        headers.append(("Retry-After", str(max(1, math.ceil(outcome.retry_after)))))
    return headers
