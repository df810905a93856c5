"""Documented error responses for routes: ``responses=errors({404: "…"})``."""

from typing import Any

from keel.platform.http.envelope import ErrorEnvelope

AUTHENTICATION = "Not authenticated, or the token or key is invalid."


def errors(statuses: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    documented = {401: AUTHENTICATION, **statuses}
    return {status: {"model": ErrorEnvelope, "description": text} for status, text in documented.items()}


NOT_MODIFIED: dict[int | str, dict[str, Any]] = {
    304: {"description": "Not modified: `If-None-Match` names the current ETag (no body)."}
}
