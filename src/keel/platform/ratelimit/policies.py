"""Every rate limit and quota Keel applies, in one table: who is counted, how much, where.

A request gets its caller's tier (anonymous per client IP; a user per user id, times
their plan's multiplier; admin) plus the limits of its route and, for a user, the
route's quota on their plan. Routes are keyed by method and path *without* the version
prefix, so ``/api/v1/auth/login`` and ``/api/v2/auth/login`` share one budget.

A quota counts what a route creates, not requests: the middleware gives the unit back
when the request did not create anything (an error, or an idempotent replay).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Literal

from keel.platform.ratelimit.model import MAX_CAPACITY, Limit
from keel.platform.security.principal import Principal
from keel.settings import Settings

Per = Literal["ip", "account"]

# Service paths (probes, scrapes, the schema and docs) are never limited: a load
# balancer's health checks must not eat a client's budget or be refused.
UNLIMITED_SEGMENTS = frozenset({"health", "metrics", "openapi.json", "docs", "redoc"})
VERSION_PREFIXES = ("/api/v1/", "/api/v2/")


@dataclass(frozen=True, slots=True)
class RouteLimit:
    name: str
    per: Per
    setting: str  # the per-window figure in Settings


@dataclass(frozen=True, slots=True)
class RoutePolicy:
    limits: tuple[RouteLimit, ...] = ()
    # A per-replica fallback would multiply a brute-force budget by the replica count:
    # these routes answer 503 while Redis is unreachable instead.
    fail_closed: bool = False
    # Per user, by plan: ``quota_<quota>_<plan>`` units per ``…_period_seconds`` in
    # Settings (0: none); admins have none. Refused with QUOTA_EXCEEDED.
    quota: str | None = None

    @property
    def needs_account(self) -> bool:
        return any(limit.per == "account" for limit in self.limits)


PLANS = ("free", "pro", "enterprise")

TIERS = {
    "anonymous": "rate_limit_anonymous_per_minute",
    "user": "rate_limit_user_per_minute",
    "admin": "rate_limit_admin_per_minute",
}

_LOGIN = RoutePolicy(
    limits=(
        RouteLimit("login-ip", "ip", "rate_limit_login_per_minute"),
        RouteLimit("login-account", "account", "rate_limit_login_per_minute"),
    ),
    fail_closed=True,
)
ROUTE_POLICIES: dict[tuple[str, str], RoutePolicy] = {
    ("POST", "/auth/login"): _LOGIN,
    ("POST", "/auth/token"): _LOGIN,
    ("POST", "/auth/register"): RoutePolicy(
        limits=(RouteLimit("register-ip", "ip", "rate_limit_register_per_minute"),),
        fail_closed=True,
    ),
    ("POST", "/products"): RoutePolicy(quota="products"),
}
# The name a quota's limit has in the response headers.
QUOTA_LIMIT_NAME = "{quota}.create"


def unversioned(path: str) -> str:
    for prefix in VERSION_PREFIXES:
        if path.startswith(prefix):
            return path[len(prefix) - 1 :]
    return path


def is_unlimited(path: str) -> bool:
    return path[1:].split("/", 1)[0] in UNLIMITED_SEGMENTS or path.endswith("/openapi.json")


def account_key(email: str) -> str:
    # Normalised like the login lookup; hashed so Redis holds no e-mail addresses.
    return "e:" + hashlib.sha256(email.strip().lower().encode()).hexdigest()[:32]


class Policies:
    """The table above with the configured figures filled in."""

    def __init__(self, settings: Settings) -> None:
        self.period = settings.rate_limit_period_seconds
        self.tiers = {tier: int(getattr(settings, name)) for tier, name in TIERS.items()}
        user = self.tiers["user"]
        # Bounded so that limit × period stays exact in both stores (see model.MAX_CAPACITY).
        ceiling = MAX_CAPACITY // round(self.period * 1_000_000)
        self.user_by_plan = {
            plan: min(ceiling, max(1, round(user * getattr(settings, f"rate_limit_{plan}_multiplier"))))
            for plan in PLANS
        }
        self.routes = ROUTE_POLICIES
        self._figures = {
            limit.setting: int(getattr(settings, limit.setting))
            for policy in ROUTE_POLICIES.values()
            for limit in policy.limits
        }
        # (quota, plan) -> (units, period seconds), for the plans that have one.
        self._quotas: dict[tuple[str, str], tuple[int, float]] = {}
        for policy in ROUTE_POLICIES.values():
            if policy.quota is None:
                continue
            for plan in PLANS:
                units = int(getattr(settings, f"quota_{policy.quota}_{plan}"))
                if units > 0:
                    period = float(getattr(settings, f"quota_{policy.quota}_{plan}_period_seconds"))
                    self._quotas[(policy.quota, plan)] = (units, period)
        self.quota_names = frozenset(
            QUOTA_LIMIT_NAME.format(quota=policy.quota) for policy in ROUTE_POLICIES.values() if policy.quota
        )

    def route(self, method: str, path: str) -> RoutePolicy | None:
        return self.routes.get((method, unversioned(path)))

    def limits_for(
        self, policy: RoutePolicy | None, *, client_ip: str, principal: Principal | None, email: str | None
    ) -> list[Limit]:
        ip_key = "ip:" + client_ip
        if principal is None:
            tier, key = "anonymous", ip_key
        else:
            # An API key counts as its user: a user cannot multiply their budget by keys.
            tier, key = ("admin" if principal.is_admin else "user"), f"u:{principal.user_id}"
        if tier == "user" and principal is not None:
            figure = self.user_by_plan.get(principal.plan, self.tiers["user"])
        else:
            figure = self.tiers[tier]
        limits = [Limit(tier, key, figure, self.period)]
        if (
            policy is not None
            and policy.quota is not None
            and principal is not None
            and not principal.is_admin
        ):
            quota = self._quotas.get((policy.quota, principal.plan))
            if quota is not None:
                name = QUOTA_LIMIT_NAME.format(quota=policy.quota)
                limits.append(Limit(name, f"u:{principal.user_id}", quota[0], quota[1]))
        if policy is not None:
            for route_limit in policy.limits:
                figure = self._figures[route_limit.setting]
                if route_limit.per == "ip":
                    limits.append(Limit(route_limit.name, ip_key, figure, self.period))
                elif email:
                    limits.append(Limit(route_limit.name, account_key(email), figure, self.period))
        return limits


_LIMIT_HEADERS = {
    "Retry-After": "Seconds to wait: the next request after it passes.",
    "X-RateLimit-Limit": "The limit closest to refusing you: requests (or units) per window.",
    "X-RateLimit-Remaining": "What that limit still allows now.",
    "X-RateLimit-Reset": "When that limit is whole again (epoch seconds).",
    "RateLimit-Policy": 'Every limit that applied, e.g. `"user";q=100;w=60`.',
    "RateLimit": 'Where you stand on each, e.g. `"user";r=42;t=17`.',
}


def document_rate_limits(schema: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Add the 429 (and, where the route fails closed, the 503) every limited operation
    can answer, with the headers that come with it."""
    if not settings.rate_limit_enabled:
        return schema
    headers = {
        name: {"description": text, "schema": {"type": "string"}} for name, text in _LIMIT_HEADERS.items()
    }
    for path, path_item in schema.get("paths", {}).items():
        if is_unlimited(path):
            continue
        for method, operation in path_item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            policy = ROUTE_POLICIES.get((method.upper(), unversioned(path)))
            text = "Too many requests: `RATE_LIMITED` (see the `RateLimit` headers)."
            if policy is not None and policy.quota is not None:
                text += " Your plan's creation quota is used up: `QUOTA_EXCEEDED`."
            responses = operation["responses"]
            responses["429"] = {**_error_reference(text), "headers": headers}
            if policy is not None and policy.fail_closed:
                responses["503"] = {
                    **_error_reference(
                        "`SERVICE_UNAVAILABLE`: the shared rate limiter is unreachable, so this route "
                        "refuses rather than limit per replica; retry after `Retry-After`."
                    ),
                    "headers": {"Retry-After": headers["Retry-After"]},
                }
    return schema


def _error_reference(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}},
    }
