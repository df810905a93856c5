"""Cache keys and tags for single-resource reads, built so that one principal's view can
never be served to another.

A key always names the viewer: ``product:<id>:<viewer>`` (``:<variant>`` appended when
the rendering has variants). There is no way to build a resource key without one, and
the parts may not contain ``:`` or glob characters, so no key can be made to collide
with another viewer's or to widen a pattern. The viewer is the principal's user id: an
API key acts for its user, and its scopes are checked by the route before the cache is
consulted.

Tags say what makes an entry wrong:
- ``resource_tag(kind, id)`` — any write to the resource, or a grant or revoke on it;
- ``viewer_tag(user_id)`` — a change to the user that changes what they may see (role,
  deactivation);
- :data:`FOLDER_TREE_TAG` — any change to who may see what through folders (a folder
  grant or revoke, a folder moved or deleted). Entries of folders, and of products
  that sit in a folder, carry it.

:func:`entry_for` puts the three together; use it rather than the parts.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import NamedTuple

# Dropped by a folder grant/revoke/move/delete. One tag for the whole tree rather than
# one per ancestor: such changes are rare, and a product's entry would otherwise need
# its folder's ancestors (a query) at every fill.
FOLDER_TREE_TAG = "folder-tree"

_KIND = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_PART = re.compile(r"[A-Za-z0-9._-]{1,128}")

Id = str | uuid.UUID


def _part(name: str, value: Id, pattern: re.Pattern[str] = _PART) -> str:
    text = str(value)
    if not pattern.fullmatch(text):
        raise ValueError(f"cache key {name} {text!r} must match {pattern.pattern}")
    return text


def resource_key(kind: str, resource_id: Id, *, viewer: Id, variant: str = "") -> str:
    """Where ``viewer``'s rendering of the resource is cached."""
    key = f"{_part('kind', kind, _KIND)}:{_part('id', resource_id)}:{_part('viewer', viewer)}"
    return f"{key}:{_part('variant', variant)}" if variant else key


def resource_pattern(kind: str, resource_id: Id | None = None) -> str:
    """Glob over every viewer's entry of one resource, or of every resource of a kind."""
    if resource_id is None:
        return f"{_part('kind', kind, _KIND)}:*"
    return f"{_part('kind', kind, _KIND)}:{_part('id', resource_id)}:*"


def resource_tag(kind: str, resource_id: Id) -> str:
    return f"{_part('kind', kind, _KIND)}:{_part('id', resource_id)}"


def viewer_tag(user_id: Id) -> str:
    return f"viewer:{_part('viewer', user_id)}"


class ResourceKey(NamedTuple):
    kind: str
    resource_id: str
    viewer: str
    variant: str


def parse_resource_key(key: str) -> ResourceKey | None:
    """The parts of a :func:`resource_key` (for warming), or ``None`` for any other key."""
    parts = key.split(":")
    if len(parts) not in (3, 4):
        return None
    kind, resource_id, viewer, *rest = parts
    variant = rest[0] if rest else ""
    try:
        if resource_key(kind, resource_id, viewer=viewer, variant=variant) != key:
            return None
    except ValueError:
        return None
    return ResourceKey(kind, resource_id, viewer, variant)


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """Where a viewer's rendering of a resource lives, and what invalidates it."""

    key: str
    tags: tuple[str, ...]


def entry_for(
    kind: str, resource_id: Id, *, viewer: Id, in_folder_tree: bool, variant: str = ""
) -> CacheEntry:
    """The key and tags for ``viewer``'s read of a resource.

    ``in_folder_tree``: whether folder grants can change who sees it — always for a
    folder, and for a product whose ``folder_id`` is set.
    """
    tags = [resource_tag(kind, resource_id), viewer_tag(viewer)]
    if in_folder_tree:
        tags.append(FOLDER_TREE_TAG)
    return CacheEntry(resource_key(kind, resource_id, viewer=viewer, variant=variant), tuple(tags))
