"""Exception handlers: every failure the app or the framework raises becomes the envelope.

Unhandled exceptions are rendered by ``RequestContextMiddleware`` (it also logs them),
so no handler here ever sees a 500.
"""

from __future__ import annotations

from typing import Any, cast

import structlog
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from keel.platform.http.envelope import ErrorItem, error_item, error_response
from keel.platform.http.errors import KeelError, describe_status
from keel.platform.http.middleware import database_busy

log = structlog.get_logger("keel.http")

_LOCATIONS = frozenset({"body", "query", "path", "header", "cookie"})


# Starlette types handlers as (Request, Exception); each is registered for one class.
async def keel_error_handler(_request: Request, exc: Exception) -> Response:
    exc = cast(KeelError, exc)
    item = error_item(exc.status_code, code=exc.code, message=exc.message, field=exc.field)
    return error_response(exc.status_code, [item], headers=exc.headers)


def allowed_methods(app: Starlette, path: str) -> list[str]:
    methods: set[str] = set()
    for route in app.router.routes:
        route_methods = getattr(route, "methods", None)
        path_regex = getattr(route, "path_regex", None)
        if route_methods and path_regex is not None and path_regex.match(path):
            methods |= route_methods
    return sorted(methods)


async def http_exception_handler(request: Request, exc: Exception) -> Response:
    exc = cast(HTTPException, exc)
    code, default_message = describe_status(exc.status_code)
    # Framework details ("Not Found", "There was an error parsing the body") are
    # replaced by the contract's messages; a handler that raised HTTPException with
    # its own text keeps it.
    message = (
        exc.detail
        if isinstance(exc.detail, str) and exc.detail not in _FRAMEWORK_DETAILS
        else default_message
    )
    item = error_item(exc.status_code, code=code, message=message)
    headers = exc.headers
    if exc.status_code == 405:
        # Starlette names only the first route whose path matched; a path served by
        # several routes (GET and PATCH on /users/{id}) must list all their methods.
        headers = {**(headers or {}), "Allow": ", ".join(allowed_methods(request.app, request.url.path))}
    return error_response(exc.status_code, [item], headers=headers)


_FRAMEWORK_DETAILS = frozenset(
    {
        "Not Found",
        "Method Not Allowed",
        "There was an error parsing the body",
        "Unsupported upgrade request.",
    }
)


def field_path(loc: tuple[Any, ...] | list[Any]) -> str | None:
    """``("body", "tags", 0)`` → ``"tags.0"``; the location prefix is dropped."""
    parts = list(loc)
    if parts and parts[0] in _LOCATIONS:
        location = parts.pop(0)
        if not parts:
            return str(location)
    return ".".join(str(part) for part in parts) or None


def validation_items(errors: list[dict[str, Any]]) -> tuple[int, list[ErrorItem]]:
    """One item per problem; malformed JSON is a 400, everything else a 422."""
    for error in errors:
        if error.get("type") == "json_invalid":
            reason = (error.get("ctx") or {}).get("error", "invalid JSON")
            position = error["loc"][-1] if error.get("loc") else "?"
            message = f"Malformed JSON body: {reason} at position {position}."
            return 400, [error_item(400, message=message, field="body")]
    items = [
        error_item(
            422, message=str(error.get("msg", "Invalid value.")), field=field_path(error.get("loc", ()))
        )
        for error in errors
    ]
    return 422, items


async def validation_error_handler(_request: Request, exc: Exception) -> Response:
    exc = cast(RequestValidationError, exc)
    status_code, items = validation_items(list(exc.errors()))
    return error_response(status_code, items)


async def pool_timeout_handler(request: Request, _exc: Exception) -> Response:
    log.warning("db.pool_exhausted", method=request.method, path=request.url.path)
    return database_busy()


def install_exception_handlers(app: FastAPI) -> None:
    app.add_exception_handler(KeelError, keel_error_handler)
    app.add_exception_handler(PoolTimeout, pool_timeout_handler)
    app.add_exception_handler(HTTPException, http_exception_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
