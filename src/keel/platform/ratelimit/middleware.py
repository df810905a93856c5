"""Rate limits enforced before routing: one limiter call per request for all its limits.

A pure ASGI middleware rather than a router dependency: a dependency runs after
routing, so 404s, 405s and validation errors would go uncounted and without headers,
and its headers would have to be carried to the response by a second layer anyway.
Here the request's limits (the caller's tier plus its route's policies, see
``policies.py``) are decided in one ``hit`` (one EVALSHA on Redis), a refusal is a 429
envelope with ``Retry-After``, and every response, errors included, carries the
figures. It sits inside ``BodyLimitMiddleware``, so reading a login body is bounded.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keel.platform.http.envelope import error_item, error_response
from keel.platform.http.idempotency import read_body, replay_body
from keel.platform.http.middleware import BodyTooLarge
from keel.platform.ratelimit.fallback import FallbackLimiter
from keel.platform.ratelimit.headers import rate_limit_headers
from keel.platform.ratelimit.model import LimiterUnavailable, Outcome, refunds
from keel.platform.ratelimit.policies import Policies, is_unlimited
from keel.platform.security.principal import Principal

# 64 (local part) + 1 + 255 (domain): anything longer is not an e-mail to count by.
MAX_EMAIL_LENGTH = 320

PrincipalOf = Callable[[Scope], Awaitable[Principal | None]]


def account_in(scope: Scope, body: bytes) -> str | None:
    """The e-mail a login names: ``email`` in JSON, ``username`` in an OAuth2 form."""
    content_type = b""
    for name, value in scope["headers"]:
        if name == b"content-type":
            content_type = value.split(b";", 1)[0].strip().lower()
            break
    email: object = None
    if content_type == b"application/x-www-form-urlencoded":
        values = parse_qs(body.decode("utf-8", "replace"), max_num_fields=20).get("username")
        email = values[0] if values else None
    else:
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        if isinstance(document, dict):
            email = document.get("email")
    if isinstance(email, str) and 0 < len(email) <= MAX_EMAIL_LENGTH:
        return email
    return None


def _encoded(headers: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(name.lower().encode(), value.encode()) for name, value in headers]


class RateLimitMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        policies: Policies,
        principal_of: PrincipalOf,
        probe_seconds: float,
    ) -> None:
        self.app = app
        self.policies = policies
        self.principal_of = principal_of
        # While Redis is down a fail-closed route can next succeed after the next probe.
        self.unavailable_retry_after = str(max(1, math.ceil(probe_seconds)))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_unlimited(scope["path"]):
            await self.app(scope, receive, send)
            return

        policy = self.policies.route(scope["method"], scope["path"])
        email = None
        if policy is not None and policy.needs_account:
            try:
                body, complete = await read_body(receive)
            except BodyTooLarge:
                # Raised by BodyLimitMiddleware's receive, outside FastAPI's handlers.
                await error_response(413, [error_item(413)])(scope, receive, send)
                return
            receive = replay_body(body, receive, disconnected=not complete)
            email = account_in(scope, body)

        principal = await self.principal_of(scope)
        client_ip = scope.get("state", {}).get("client_ip") or "unknown"
        limits = self.policies.limits_for(policy, client_ip=client_ip, principal=principal, email=email)
        limiter = scope["app"].state.resources.limiter
        try:
            if isinstance(limiter, FallbackLimiter):
                outcome = await limiter.hit(limits, fail_closed=policy is not None and policy.fail_closed)
            else:
                outcome = await limiter.hit(limits)
        except LimiterUnavailable as exc:
            item = error_item(503, code=exc.code, message=exc.message)
            await error_response(503, [item], headers={"Retry-After": self.unavailable_retry_after})(
                scope, receive, send
            )
            return

        headers = rate_limit_headers(outcome, now=time.time())
        if not outcome.allowed:
            await self._refuse(outcome, headers, scope, receive, send)
            return
        encoded = _encoded(headers)
        quotas = [limit for limit in limits if limit.name in self.policies.quota_names]
        created = False

        async def send_with_headers(message: Message) -> None:
            nonlocal created
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *encoded]
                created = 200 <= message["status"] < 300 and not any(
                    name.lower() == b"idempotent-replayed" for name, _ in message["headers"]
                )
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            if quotas and not created:
                # A quota counts what was created: an error or a replay gives the unit
                # back (one more round trip, on these requests only).
                await limiter.hit(refunds(quotas))

    async def _refuse(
        self, outcome: Outcome, headers: list[tuple[str, str]], scope: Scope, receive: Receive, send: Send
    ) -> None:
        names = ", ".join(decision.name for decision in outcome.refused)
        retry_after = dict(headers)["Retry-After"]
        if any(decision.name in self.policies.quota_names for decision in outcome.refused):
            item = error_item(
                429,
                code="QUOTA_EXCEEDED",
                message=f"Your plan's quota is used up ({names}); retry after {retry_after} s.",
            )
        else:
            item = error_item(429, message=f"Too many requests ({names}); retry after {retry_after} s.")
        response = error_response(429, [item], headers=dict(headers))
        await response(scope, receive, send)
