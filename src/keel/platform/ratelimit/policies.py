"""Every rate limit Keel applies, in one table: who is counted, how much, on which routes.

A request gets its caller's tier (anonymous per client IP, user per user id, admin) plus
the limits of its route. Routes are keyed by method and path *without* the version
prefix, so ``/api/v1/auth/login`` and ``/api/v2/auth/login`` share one budget.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

from keel.platform.ratelimit.model import Limit
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
    limits: tuple[RouteLimit, ...]
    # A per-replica fallback would multiply a brute-force budget by the replica count:
    # these routes answer 503 while Redis is unreachable instead.
    fail_closed: bool

    @property
    def needs_account(self) -> bool:
        return any(limit.per == "account" for limit in self.limits)


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
}


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
        self.routes = ROUTE_POLICIES
        self._figures = {
            limit.setting: int(getattr(settings, limit.setting))
            for policy in ROUTE_POLICIES.values()
            for limit in policy.limits
        }

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
        limits = [Limit(tier, key, self.tiers[tier], self.period)]
        if policy is not None:
            for route_limit in policy.limits:
                figure = self._figures[route_limit.setting]
                if route_limit.per == "ip":
                    limits.append(Limit(route_limit.name, ip_key, figure, self.period))
                elif email:
                    limits.append(Limit(route_limit.name, account_key(email), figure, self.period))
        return limits
