"""The resource cache: hot single-resource reads (a product, a folder) cached per viewer,
in Redis when ``KEEL_REDIS_URL`` is set, else in a byte-bounded in-process LRU.

Reading (a route, after authentication and scope checks)::

    entry = entry_for("product", product_id, viewer=principal.user_id,
                      in_folder_tree=<product has a folder>)
    body = await read_through(cache, entry, load, ttl=settings.cache_ttl_seconds)

``entry_for`` makes the viewer part of the key, so one principal's rendering can never
be served to another; ``load`` reads and renders as that viewer (visibility included).
Whether a product sits in a folder is known only after reading it: ``load`` then
returns a :class:`Fill` with the entry's real tags (see :mod:`.views`, which routes use).

Invalidating (services, in the writing transaction, applied after commit)::

    invalidate_on_commit(session, resource_tag("product", product_id))

- any write to a product (update, delete, restore, a move between folders) and any
  grant or revoke on it → ``resource_tag("product", id)``;
- a folder's update → ``resource_tag("folder", id)``; a folder moved, deleted (its
  products go with it) or shared/unshared → :data:`FOLDER_TREE_TAG`, which every folder
  entry and every entry of a product in a folder carries. We recommend this one tag
  over dropping the ``product:*`` pattern: it spares products outside folders and it
  is protected by the fill guard, which patterns are not;
- a user's role or activity changed (what they may see changes) →
  ``viewer_tag(user_id)``.

Entries expire after their TTL whatever happens: keep it short (a minute), it is the
backstop if an invalidation is lost with the process that owed it.
"""

from keel.platform.caching.base import CacheStats, ResourceCache
from keel.platform.caching.factory import create_cache
from keel.platform.caching.invalidation import apply_committed, invalidate_on_commit
from keel.platform.caching.keys import (
    FOLDER_TREE_TAG,
    CacheEntry,
    ResourceKey,
    entry_for,
    parse_resource_key,
    resource_key,
    resource_pattern,
    resource_tag,
    viewer_tag,
)
from keel.platform.caching.memory import MemoryCache
from keel.platform.caching.reads import Fill, read_through
from keel.platform.caching.redis_cache import RedisCache
from keel.platform.caching.warm import Loader, WarmReport, warm

__all__ = [
    "FOLDER_TREE_TAG",
    "CacheEntry",
    "CacheStats",
    "Fill",
    "Loader",
    "MemoryCache",
    "RedisCache",
    "ResourceCache",
    "ResourceKey",
    "WarmReport",
    "apply_committed",
    "create_cache",
    "entry_for",
    "invalidate_on_commit",
    "parse_resource_key",
    "read_through",
    "resource_key",
    "resource_pattern",
    "resource_tag",
    "viewer_tag",
    "warm",
]
