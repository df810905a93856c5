"""API versions: ``/api/v2`` is served by the handlers; ``/api/v1`` is the same handlers
seen through one translation layer (plain shapes, deprecation headers).

- ``/api/v1/...`` is routed to ``/api/v2/...`` and its JSON envelopes are rewritten:
  a resource becomes the bare object, a list ``{"items": [...], "total": N}``, an error
  ``{"detail", "error_code", "timestamp"}``.
- An unprefixed path (``/products``) with ``Accept: application/vnd.keel.v1+json`` (or
  ``v2``) is served as that version; service paths (``/health``, ``/metrics``, docs) are
  never rewritten.
"""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime, time
from email.utils import format_datetime
from typing import Any, TypeGuard

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

V1_PREFIX = "/api/v1"
V2_PREFIX = "/api/v2"
V1_API_VERSION = "1.9.0"
V1_MEDIA_TYPE = "application/vnd.keel.v1+json"
V2_MEDIA_TYPE = "application/vnd.keel.v2+json"
# First path segments that belong to the service, not to a versioned API.
SERVICE_SEGMENTS = frozenset({"health", "metrics", "openapi.json", "docs", "redoc", "api"})
# Served by their own routes rather than translated.
UNTRANSLATED_PATHS = frozenset({f"{V1_PREFIX}/openapi.json"})


def _first_segment(path: str) -> str:
    return path[1:].split("/", 1)[0]


def _requested_version(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"accept":
            if V1_MEDIA_TYPE.encode() in value:
                return 1
            if V2_MEDIA_TYPE.encode() in value:
                return 2
            return None
    return None


def translate_v1_body(body: dict[str, Any]) -> Any:
    """An envelope rendered in the v1 shape."""
    if body.get("success") is False:
        errors = body.get("errors") or [{}]
        if len(errors) > 1:
            detail = "; ".join(
                f"{item['field']}: {item['message']}" if item.get("field") else str(item.get("message"))
                for item in errors
            )
        else:
            detail = errors[0].get("message", "Error")
        return {
            "detail": detail,
            "error_code": errors[0].get("code", "INTERNAL_ERROR"),
            "timestamp": body.get("timestamp"),
        }
    data = body.get("data")
    if isinstance(data, list):
        pagination = (body.get("meta") or {}).get("pagination") or {}
        return {"items": data, "total": pagination.get("total", len(data))}
    return data


def _is_envelope(body: Any) -> TypeGuard[dict[str, Any]]:
    return isinstance(body, dict) and "success" in body and "request_id" in body and "data" in body


class VersionMiddleware:
    """Outermost layer: picks the version and, for v1, rewrites JSON envelopes."""

    def __init__(self, app: ASGIApp, *, v1_deprecated_on: date, v1_sunset_on: date) -> None:
        self.app = app
        deprecated = datetime.combine(v1_deprecated_on, time(), UTC)
        sunset = datetime.combine(v1_sunset_on, time(), UTC)
        self.v1_headers = [
            # RFC 9745: "@" + epoch seconds; RFC 8594: an HTTP-date.
            (b"deprecation", f"@{int(deprecated.timestamp())}".encode()),
            (b"sunset", format_datetime(sunset, usegmt=True).encode()),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith(V1_PREFIX + "/") and path not in UNTRANSLATED_PATHS:
            v2_path = V2_PREFIX + path[len(V1_PREFIX) :]
            version = 1
        elif _first_segment(path) not in SERVICE_SEGMENTS and (version_asked := _requested_version(scope)):
            v2_path = V2_PREFIX + path
            version = version_asked
        else:
            await self.app(scope, receive, send)
            return

        # Routing must see the v2 path; the scope is changed in place so the layers
        # outside this one (none today) and the router agree on what was served.
        scope["path"] = v2_path
        scope["raw_path"] = v2_path.encode()
        scope.setdefault("state", {})["api_version"] = version
        if version == 2 or scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return
        translate = scope["method"] != "HEAD"
        await self.app(scope, receive, _V1Sender(send, self.v1_headers, v2_path, translate=translate).send)


_V2_PATH = (V2_PREFIX + "/").encode()
_V1_PATH = (V1_PREFIX + "/").encode()


def _v1_header(name: bytes, value: bytes) -> bytes:
    """The handlers speak v2: point their Location and Link targets at v1 instead."""
    if name == b"api-version":
        return V1_API_VERSION.encode()
    if name in (b"location", b"link"):
        return bytes(value).replace(_V2_PATH, _V1_PATH)
    return value


class _V1Sender:
    """Buffers a JSON envelope response and sends it in the v1 shape."""

    def __init__(
        self, send: Send, v1_headers: list[tuple[bytes, bytes]], v2_path: str, *, translate: bool
    ) -> None:
        self._send = send
        self._translate = translate
        successor = f'<{v2_path}>; rel="successor-version"'.encode()
        self._extra = [*v1_headers, (b"link", successor)]
        self._start: Message | None = None
        self._chunks: list[bytes] = []

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [(name, _v1_header(name, value)) for name, value in message.get("headers", ())]
            message = {**message, "headers": [*headers, *self._extra]}
            if self._translate and self._is_json(message):
                self._start = message
                return
            await self._send(message)
            return
        if message["type"] != "http.response.body" or self._start is None:
            await self._send(message)
            return
        self._chunks.append(message.get("body", b""))
        if message.get("more_body", False):
            return
        await self._flush()

    @staticmethod
    def _is_json(message: Message) -> bool:
        for name, value in message.get("headers", ()):
            if name == b"content-type":
                return bytes(value).startswith(b"application/json")
        return False

    async def _flush(self) -> None:
        start = self._start
        assert start is not None  # noqa: S101 - only called after a JSON start was held
        body = b"".join(self._chunks)
        try:
            parsed = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            parsed = None
        if _is_envelope(parsed):
            body = orjson.dumps(translate_v1_body(parsed))
        headers = [
            (name, str(len(body)).encode() if name == b"content-length" else value)
            for name, value in start["headers"]
        ]
        await self._send({**start, "headers": headers})
        await self._send({"type": "http.response.body", "body": body, "more_body": False})


def v1_openapi(v2_schema: dict[str, Any]) -> dict[str, Any]:
    """The v1 schema: the versioned paths under ``/api/v1`` with plain response shapes."""
    schema = copy.deepcopy(v2_schema)
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["V1Error"] = {
        "type": "object",
        "title": "V1Error",
        "required": ["detail", "error_code", "timestamp"],
        "properties": {
            "detail": {"type": "string"},
            "error_code": {"type": "string"},
            "timestamp": {"type": "string"},
        },
    }
    paths = {}
    for path, item in schema.get("paths", {}).items():
        if not path.startswith(V2_PREFIX + "/"):
            continue
        for operation in item.values():
            if isinstance(operation, dict):
                operation["deprecated"] = True
                for response in operation.get("responses", {}).values():
                    for media in response.get("content", {}).values():
                        media["schema"] = _v1_schema(media.get("schema", {}), components)
        paths[V1_PREFIX + path[len(V2_PREFIX) :]] = item
    schema["paths"] = paths
    schema["info"] = {**schema.get("info", {}), "version": V1_API_VERSION}
    schema["info"]["description"] = (
        "Compatibility surface for older clients: plain shapes, `Deprecation` and `Sunset` "
        "headers. New clients use /api/v2."
    )
    return schema


def _v1_schema(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref", "")
    name = ref.rsplit("/", 1)[-1]
    if name == "ErrorEnvelope":
        return {"$ref": "#/components/schemas/V1Error"}
    if not name.startswith("Envelope_"):
        return schema
    data = components.get(name, {}).get("properties", {}).get("data", {})
    if data.get("type") == "array":
        return {
            "type": "object",
            "required": ["items", "total"],
            "properties": {"items": data, "total": {"type": "integer"}},
        }
    return dict(data)
