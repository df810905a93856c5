"""The v2 response envelope: models for the OpenAPI schema, and fast renderers.

Handlers return :func:`ok` (a ready ``Response``), so FastAPI skips its generic
``jsonable_encoder`` path; the route's ``response_model=Envelope[T]`` documents the shape.
The envelope frame is assembled around the pydantic-serialised ``data`` bytes: every
value spliced in is either JSON produced by pydantic/orjson or a request id / timestamp
whose alphabet is restricted (see ``context.py``), so the result is always valid JSON.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Generic, Literal, TypeVar

import orjson
import pydantic_core
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from keel.platform.http.context import current_request_id, utc_timestamp
from keel.platform.http.errors import ErrorCode, Severity, describe_status, severity_for

API_VERSION = "2.0.0"
JSON_MEDIA_TYPE = "application/json"


class Schema(BaseModel):
    """Project-wide base for API schemas."""

    model_config = ConfigDict(from_attributes=True, populate_by_name=True)


# Patterns for user text. A line: no control characters at all. Free text: tabs and
# newlines allowed. PostgreSQL refuses NUL in text, and no other control belongs there.
LINE_PATTERN = r"^[^\x00-\x1f\x7f]*$"
TEXT_PATTERN = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"
# A required line (stripped, at least one character): a line with one character that is
# blank to no one. Blank counts Python's whitespace (what strip_whitespace removes before
# min_length is checked: U+0085 among it), the JSON Schema regex's \s (ECMAScript: U+FEFF
# among it) and C1 controls, so a value the schema allows is never stripped to nothing,
# and one the API refuses for blankness the schema refuses too.
_BLANK = r"\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
FILLED_LINE_PATTERN = rf"^[^\x00-\x1f\x7f]*[^{_BLANK}][^\x00-\x1f\x7f]*$"


def not_null_in_schema(schema: dict[str, Any]) -> None:
    """``json_schema_extra`` for an optional field of a partial update that refuses null
    (422): documented as "omit it or give a value", not as nullable."""
    variants = [variant for variant in schema.pop("anyOf", []) if variant.get("type") != "null"]
    if len(variants) == 1:
        schema.update(variants[0])
    else:
        schema["anyOf"] = variants
    schema.pop("default", None)


class Link(Schema):
    href: str = Field(description="Absolute path of the related resource.")
    rel: str = Field(description="Relation: self, next, prev, first, last, …")
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = Field(
        "GET", description="HTTP method to use on href."
    )


class ErrorItem(Schema):
    code: ErrorCode = Field(description="Stable machine-readable error code.")
    message: str = Field(description="Human-readable explanation; safe to show.")
    field: str | None = Field(None, description="Dotted path of the offending input field, or null.")
    severity: Severity = Field("low", description="low | medium | high | critical")


class _EnvelopeBase(Schema):
    success: bool = Field(description="true for 2xx responses.")
    version: str = Field(API_VERSION, description="Envelope/API version.")
    timestamp: str = Field(description="Server time, RFC 3339 UTC.")
    request_id: str = Field(description="Equals the X-Request-ID response header.")
    errors: list[ErrorItem] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    links: list[Link] = Field(default_factory=list)
    meta: dict[str, Any] = Field(default_factory=dict)


T = TypeVar("T")


class Envelope(_EnvelopeBase, Generic[T]):
    """Successful response."""

    data: T


class ErrorEnvelope(_EnvelopeBase):
    """Error response: ``success`` is false, ``data`` is null, ``errors`` is not empty."""

    success: Literal[False] = False
    data: None = None


def _frame(
    *,
    success: bool,
    data_json: bytes,
    errors_json: bytes,
    warnings: Sequence[str],
    links: Sequence[Link],
    meta: Mapping[str, Any] | None,
) -> bytes:
    return b"".join(
        (
            b'{"success":true' if success else b'{"success":false',
            b',"version":"' + API_VERSION.encode() + b'","timestamp":"',
            utc_timestamp().encode(),
            b'","request_id":"',
            current_request_id().encode(),
            b'","data":',
            data_json,
            b',"errors":',
            errors_json,
            b',"warnings":',
            orjson.dumps(list(warnings)) if warnings else b"[]",
            b',"links":',
            pydantic_core.to_json(list(links)) if links else b"[]",
            b',"meta":',
            pydantic_core.to_json(meta) if meta else b"{}",
            b"}",
        )
    )


class EnvelopeResponse(Response):
    """A rendered JSON body; builds its two framing headers directly (this runs for
    every response, and Starlette's generic header set-up costs about twice as much)."""

    media_type = JSON_MEDIA_TYPE

    def __init__(self, body: bytes, status_code: int = 200, headers: Mapping[str, str] | None = None) -> None:
        self.status_code = status_code
        self.background = None
        self.body = body
        self.raw_headers = [
            (b"content-length", str(len(body)).encode()),
            (b"content-type", b"application/json"),
        ]
        if headers:
            self.raw_headers += [
                (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()
            ]


class RawJSON(bytes):
    """``data`` already rendered as JSON (to hash it for an ETag first): spliced in as is."""


def ok(
    data: Any = None,
    *,
    status_code: int = 200,
    links: Sequence[Link] = (),
    meta: Mapping[str, Any] | None = None,
    warnings: Sequence[str] = (),
    headers: Mapping[str, str] | None = None,
) -> Response:
    """A success envelope around ``data`` (a pydantic model, list of models or JSON value).

    A 204 has no body at all: return ``Response(status_code=204)`` instead.
    """
    body = _frame(
        success=True,
        data_json=data if isinstance(data, RawJSON) else pydantic_core.to_json(data),
        errors_json=b"[]",
        warnings=warnings,
        links=links,
        meta=meta,
    )
    return EnvelopeResponse(body, status_code, headers)


def error_body(status_code: int, items: Sequence[ErrorItem], meta: Mapping[str, Any] | None = None) -> bytes:
    return _frame(
        success=False,
        data_json=b"null",
        errors_json=pydantic_core.to_json(list(items)),
        warnings=(),
        links=(),
        meta=meta,
    )


def error_item(
    status_code: int,
    *,
    code: ErrorCode | None = None,
    message: str | None = None,
    field: str | None = None,
) -> ErrorItem:
    default_code, default_message = describe_status(status_code)
    return ErrorItem(
        code=code or default_code,
        message=message or default_message,
        field=field,
        severity=severity_for(status_code),
    )


def error_response(
    status_code: int,
    items: Sequence[ErrorItem],
    *,
    headers: Mapping[str, str] | None = None,
    meta: Mapping[str, Any] | None = None,
) -> Response:
    return EnvelopeResponse(error_body(status_code, items, meta), status_code, headers)
