"""Entity tags and conditional requests (RFC 9110 §8.8.3, §13).

Single resources get a strong tag derived from their id and version (a counter bumped
in the same UPDATE as every change); lists get a weak tag over the rendered page.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from fastapi import Depends, Header
from starlette.requests import Request
from starlette.responses import Response

from keel.platform.http.envelope import Link, RawJSON, ok
from keel.platform.http.errors import KeelError

# Authenticated representations may be cached by the client only, and revalidated.
PRIVATE_NO_CACHE = "private, no-cache"


class PreconditionFailed(KeelError):
    code = "PRECONDITION_FAILED"
    status_code = 412
    default_message = "The resource has changed since you read it (If-Match did not match its ETag)."


def strong_etag(resource_id: uuid.UUID, version: int) -> str:
    return f'"{resource_id.hex}-{version}"'


def weak_etag(body: bytes) -> str:
    return f'W/"{hashlib.blake2b(body, digest_size=12).hexdigest()}"'


def _tags(header: str) -> list[str]:
    return [tag.strip() for tag in header.split(",") if tag.strip()]


def _opaque(tag: str) -> str:
    return tag[2:] if tag.startswith("W/") else tag


def none_match(request: Request, etag: str) -> bool:
    """True when ``If-None-Match`` names this representation (weak comparison): the
    client's copy is current and the answer is 304."""
    header = request.headers.get("if-none-match")
    if header is None:
        return False
    tags = _tags(header)
    return "*" in tags or _opaque(etag) in (_opaque(tag) for tag in tags)


def require_match(tags: list[str] | None, etag: str) -> None:
    """412 unless ``If-Match`` is absent, ``*`` or names ``etag`` (strong comparison:
    a weak tag never matches, RFC 9110 §13.1.1)."""
    if tags is None or "*" in tags or etag in tags:
        return
    raise PreconditionFailed(field="If-Match")


async def _if_match(
    if_match: Annotated[
        str | None,
        Header(
            max_length=2048,
            description="Only change the resource if its current ETag is one of these (or `*`); "
            "otherwise 412 `PRECONDITION_FAILED`. Prevents lost updates.",
        ),
    ] = None,
) -> list[str] | None:
    return None if if_match is None else _tags(if_match)


async def _if_none_match(
    if_none_match: Annotated[
        str | None,
        Header(
            max_length=2048,
            description="ETags the client holds: when one is current the answer is 304 with no body.",
        ),
    ] = None,
) -> str | None:
    # Read from the request in none_match(); declared here so OpenAPI documents it.
    return if_none_match


IfMatch = Annotated[list[str] | None, Depends(_if_match)]
IfNoneMatch = Annotated[str | None, Depends(_if_none_match)]


def resource_response(
    request: Request,
    data: Mapping[str, Any] | RawJSON,
    *,
    etag: str,
    self_href: str,
    status_code: int = 200,
    links: Sequence[Link] = (),
    cache_control: str = PRIVATE_NO_CACHE,
) -> Response:
    """One resource in the envelope with its strong ETag and ``self`` link; a ``GET``
    whose ``If-None-Match`` names the ETag gets 304; a 201 carries ``Location``.
    A response carrying a secret passes ``cache_control="no-store"``."""
    headers = {"ETag": etag, "Cache-Control": cache_control}
    if status_code == 201:
        headers["Location"] = self_href
    elif request.method == "GET" and none_match(request, etag):
        return Response(status_code=304, headers=headers)
    return ok(
        data, status_code=status_code, links=[Link(href=self_href, rel="self"), *links], headers=headers
    )
