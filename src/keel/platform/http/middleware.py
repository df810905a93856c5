"""Pure ASGI middleware (no ``BaseHTTPMiddleware``: it costs ~95 µs per layer per request
on these machines and breaks streaming and contextvars; ``make bench`` measures it)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any

import structlog
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keel.platform.http.context import IPNetwork, accept_request_id, request_id_var, resolve_client_ip
from keel.platform.http.envelope import API_VERSION, error_item, error_response
from keel.platform.http.errors import CLOSE_CONNECTION
from keel.platform.http.versions import V1_PREFIX, V2_PREFIX
from keel.platform.observability.logging import AccessLog
from keel.platform.observability.metrics import UNMATCHED_ROUTE, HTTPMetrics
from keel.platform.observability.stats import RequestStats

log = structlog.get_logger("keel.http")

DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc"})
# Plain Starlette routes (the schema and docs) do not record themselves in the scope;
# they have no path parameters, so their path is their template.
STATIC_ROUTES = DOCS_PATHS | {"/openapi.json", "/api/v1/openapi.json", "/api/v2/openapi.json"}
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# Swagger UI and ReDoc load their bundles from a CDN and run inline bootstrap scripts.
DOCS_CSP = (
    "default-src 'self'; "
    "script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    "img-src 'self' data: https://fastapi.tiangolo.com https://cdn.redoc.ly; "
    "font-src 'self' https://fonts.gstatic.com; worker-src 'self' blob:; "
    "connect-src 'self'; frame-ancestors 'none'"
)
HSTS_VALUE = b"max-age=63072000; includeSubDomains"
# nginx's convention for "the client went away before a response": not a server error.
CLIENT_CLOSED_REQUEST = 499
# Methods recorded under their own name in the metrics; uvicorn accepts any token as a
# method, and each made-up one would otherwise add a series per route.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "OTHER"


def _security_headers(csp: str, *, document: bool = False) -> list[tuple[bytes, bytes]]:
    headers = [
        (b"api-version", API_VERSION.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"no-referrer"),
        (b"content-security-policy", csp.encode()),
    ]
    if document:
        # Isolates the browsing context of HTML pages; meaningless for JSON.
        headers.append((b"cross-origin-opener-policy", b"same-origin"))
    return headers


def database_busy() -> Response:
    """503 for a request that found every database connection busy: the client may
    retry in a moment."""
    message = "The service is busy. Retry in a moment."
    return error_response(503, [error_item(503, message=message)], headers={"Retry-After": "1"})


def _failure(error: Exception, scope: Scope) -> Response:
    """Log an exception no handler took (call it in the ``except`` block, for the
    traceback) and say how to answer it. Every pooled database connection busy past
    KEEL_DB_POOL_TIMEOUT (raised outside the routes, e.g. while authenticating) is an
    overload to retry, not a fault."""
    if isinstance(error, PoolTimeout):
        log.warning("db.pool_exhausted", method=scope["method"], path=scope["path"])
        return database_busy()
    log.exception("http.unhandled_error", method=scope["method"], path=scope["path"])
    return error_response(500, [error_item(500)])


def route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    if isinstance(path, str):
        return path
    return scope["path"] if scope["path"] in STATIC_ROUTES else UNMATCHED_ROUTE


class RequestContextMiddleware:
    """Outermost layer: request id, client address, response headers, access log,
    metrics, and the last word on unhandled exceptions (logged with the traceback,
    answered with a bare ``INTERNAL_ERROR`` envelope)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: HTTPMetrics,
        stats: RequestStats,
        access_log: AccessLog,
        trusted_proxies: tuple[IPNetwork, ...] = (),
        hsts: bool = False,
        record_metrics: bool = True,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.stats = stats
        self.record_metrics = record_metrics
        self.access_log = access_log
        self.trusted_proxies = trusted_proxies
        self.hsts = hsts
        self.api_headers = _security_headers(API_CSP)
        self.docs_headers = _security_headers(DOCS_CSP, document=True)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        started_at = time.perf_counter()
        incoming_id = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                incoming_id = value
                break
        request_id = accept_request_id(incoming_id)
        id_token = request_id_var.set(request_id)
        state = scope.setdefault("state", {})
        state["client_ip"] = resolve_client_ip(scope, self.trusted_proxies)

        extra_headers = [(b"x-request-id", request_id.encode())]
        extra_headers += self.docs_headers if scope["path"] in DOCS_PATHS else self.api_headers
        if self.hsts or scope.get("scheme") == "https":
            extra_headers.append((b"strict-transport-security", HSTS_VALUE))

        status = 500
        response_started = False
        streamed = False

        async def send_with_headers(message: Message) -> None:
            nonlocal status, response_started, streamed
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), *extra_headers]
            elif message.get("more_body"):
                streamed = True
            await send(message)

        if self.record_metrics:
            self.metrics.started()
        try:
            await self.app(scope, receive, send_with_headers)
        except Exception as error:
            response = _failure(error, scope)
            if response_started:
                raise
            await response(scope, receive, send_with_headers)
        except asyncio.CancelledError:
            if not response_started:
                status = CLIENT_CLOSED_REQUEST
            raise
        finally:
            self._finished(scope, state, status, time.perf_counter() - started_at, streamed=streamed)
            request_id_var.reset(id_token)

    def _finished(
        self, scope: Scope, state: dict[str, Any], status: int, duration: float, *, streamed: bool
    ) -> None:
        """Metrics and the access log of a request that has ended."""
        route = route_template(scope)
        if self.record_metrics:
            method = scope["method"] if scope["method"] in KNOWN_METHODS else OTHER_METHOD
            self.metrics.finished(method, route, status, duration)
            self.stats.record(method, route, status, duration, timed=not streamed)
        self.access_log(
            scope["method"],
            route,
            scope["path"],
            status,
            round(duration * 1000, 3),
            state["client_ip"],
            state.get("principal"),
        )


_VERSION_PREFIXES = (V1_PREFIX + "/", V2_PREFIX + "/")


class BodyTooLarge(HTTPException):
    """The body went over its limit while streaming: the answer closes the connection
    (the rest of the body is never read)."""

    def __init__(self, limit: int) -> None:
        message = f"The request body exceeds the limit of {limit} bytes."
        super().__init__(status_code=413, detail=message, headers=dict(CLOSE_CONNECTION))


class BodyLimitMiddleware:
    """Refuse bodies over ``max_bytes``: at once when ``Content-Length`` says so, and
    while streaming otherwise (chunked bodies, or a lying ``Content-Length``).

    ``route_limits`` raises (or lowers) the cap for a few routes, keyed by method and
    path without the version prefix (``("POST", "/documents")``): the upload route
    streams its body to disk and enforces its own, larger file limit.
    """

    def __init__(
        self, app: ASGIApp, *, max_bytes: int, route_limits: Mapping[tuple[str, str], int] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.route_limits = dict(route_limits or {})

    def limit_for(self, method: str, path: str) -> int:
        if self.route_limits:
            for prefix in _VERSION_PREFIXES:
                if path.startswith(prefix):
                    path = path[len(prefix) - 1 :]
                    break
            return self.route_limits.get((method, path.rstrip("/") or "/"), self.max_bytes)
        return self.max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["method"], scope["path"])
        has_body = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                if value.isdigit() and int(value) > limit:
                    await self._reject(scope, receive, send, limit)
                    return
                has_body = value != b"0"
            elif name == b"transfer-encoding":
                has_body = True
        if not has_body and scope.get("http_version") in ("1.0", "1.1"):
            # HTTP/1.x (RFC 9112 §6.3): no Content-Length and no Transfer-Encoding
            # means no body, so there is nothing to count. HTTP/2 may omit both.
            await self.app(scope, receive, send)
            return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, limited_receive, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        await too_large_response(BodyTooLarge(limit))(scope, receive, send)


def too_large_response(error: BodyTooLarge) -> Response:
    """:class:`BodyTooLarge` in the envelope, for middleware (FastAPI's handlers, which
    would render it, are further in)."""
    return error_response(413, [error_item(413, message=error.detail)], headers=error.headers)


class TrustedHostMiddleware:
    """Reject requests whose ``Host`` is not configured, with the error envelope.

    Starlette's ``TrustedHostMiddleware`` answers with plain text, which would break
    the contract that every JSON error is an envelope; the check itself is short.
    """

    def __init__(self, app: ASGIApp, *, allowed_hosts: Sequence[str]) -> None:
        self.app = app
        self.exact = frozenset(host.lower() for host in allowed_hosts if not host.startswith("*."))
        self.suffixes = tuple(host[1:].lower() for host in allowed_hosts if host.startswith("*."))

    def is_allowed(self, host: str) -> bool:
        host = host.lower()
        if host.startswith("["):
            host = host[: host.find("]") + 1]
        elif host.count(":") == 1:
            host = host.split(":", 1)[0]
        return host in self.exact or host.endswith(self.suffixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        host = ""
        for name, value in scope["headers"]:
            if name == b"host":
                host = value.decode("latin-1")
                break
        if self.is_allowed(host):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        response = error_response(400, [error_item(400, message="Invalid Host header.")])
        await response(scope, receive, send)
