"""Cached single-resource reads as routes use them: a viewer's rendering and its ETag.

A view is what ``GET /<kind>/{id}`` shows one principal. Cached, it is stored as
``<etag>\\n<data as JSON>``, so a hit is spliced into the envelope without decoding or
re-encoding anything, and ``If-None-Match`` is answered from the cache too.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, NamedTuple

import pydantic_core
from sqlalchemy.ext.asyncio import AsyncSession

from keel.platform.caching.keys import entry_for
from keel.platform.caching.reads import Fill, read_through
from keel.platform.http.envelope import RawJSON
from keel.platform.resources import Resources
from keel.platform.security.principal import Principal


class View(NamedTuple):
    etag: str
    data: Mapping[str, Any]
    # Whether folder grants decide who sees it: always for a folder, and for a product
    # in a folder. Such entries are dropped by any change to the folder tree.
    in_folder_tree: bool


# Reads the resource as ``principal`` — visibility included — and renders it; None when
# the principal may not see it (or it does not exist).
ViewLoad = Callable[[AsyncSession, Principal, uuid.UUID], Awaitable[View | None]]


def unpack(value: bytes) -> tuple[str, RawJSON]:
    etag, _, data = value.partition(b"\n")
    return etag.decode(), RawJSON(data)


async def fill(
    resources: Resources, kind: str, load: ViewLoad, principal: Principal, resource_id: uuid.UUID
) -> Fill | None:
    """The principal's view as a cache entry, read in a fresh read session (its own
    snapshot, as read_through requires)."""
    async with resources.db.reader() as session:
        view = await load(session, principal, resource_id)
    if view is None:
        return None
    entry = entry_for(kind, resource_id, viewer=principal.user_id, in_folder_tree=view.in_folder_tree)
    return Fill(entry, view.etag.encode() + b"\n" + pydantic_core.to_json(view.data))


async def read_view(
    resources: Resources, kind: str, resource_id: uuid.UUID, principal: Principal, load: ViewLoad
) -> tuple[str, Mapping[str, Any] | RawJSON] | None:
    """``(etag, data)`` of the principal's view, from the cache when it holds it."""
    cache = resources.cache
    if cache is None:
        async with resources.db.reader() as session:
            view = await load(session, principal, resource_id)
        return None if view is None else (view.etag, view.data)
    # The key does not depend on the tags; the fill brings the ones the row calls for.
    entry = entry_for(kind, resource_id, viewer=principal.user_id, in_folder_tree=True)
    value = await read_through(
        cache,
        entry,
        lambda: fill(resources, kind, load, principal, resource_id),
        ttl=resources.settings.cache_ttl_seconds,
    )
    return None if value is None else unpack(value)
