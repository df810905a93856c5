"""What both cache backends promise, run against each."""

from __future__ import annotations

import uuid

from keel.platform.caching import ResourceCache, entry_for, resource_key
from tests.platform.caching.conftest import Harness

TTL = 60.0


async def test_a_stored_value_is_returned(cache: ResourceCache) -> None:
    assert await cache.set("product:1:u", b"body", ttl=TTL)
    assert await cache.get("product:1:u") == b"body"


async def test_an_absent_key_is_a_miss(cache: ResourceCache) -> None:
    assert await cache.get("product:404:u") is None


async def test_an_entry_expires_after_its_ttl(harness: Harness) -> None:
    cache = harness.make()
    await cache.set("short", b"x", ttl=0.3)
    await cache.set("long", b"y", ttl=TTL)
    await harness.advance(0.4)
    assert await cache.get("short") is None
    assert await cache.get("long") == b"y"
    assert await cache.count() == 1
    assert (await cache.stats()).current_size_bytes == len("long") + 1


async def test_a_non_positive_ttl_stores_nothing(cache: ResourceCache) -> None:
    assert not await cache.set("k", b"x", ttl=0)
    assert await cache.get("k") is None


async def test_setting_again_replaces_the_value_and_its_size(cache: ResourceCache) -> None:
    await cache.set("k", b"12345", ttl=TTL)
    await cache.set("k", b"12", ttl=TTL)
    assert await cache.get("k") == b"12"
    assert (await cache.stats()).current_size_bytes == len("k") + 2
    assert await cache.count() == 1


async def test_delete_counts_the_entries_it_dropped(cache: ResourceCache) -> None:
    await cache.set("a", b"1", ttl=TTL)
    await cache.set("b", b"2", ttl=TTL)
    assert await cache.delete("a", "b", "never-set") == 2
    assert await cache.delete("a") == 0
    assert await cache.get("b") is None
    assert (await cache.stats()).current_size_bytes == 0


async def test_tag_invalidation_drops_exactly_the_tagged_entries(cache: ResourceCache) -> None:
    await cache.set("product:1:alice", b"a", ttl=TTL, tags=["product:1", "viewer:alice"])
    await cache.set("product:1:bob", b"b", ttl=TTL, tags=["product:1", "viewer:bob"])
    await cache.set("product:2:alice", b"c", ttl=TTL, tags=["product:2", "viewer:alice"])
    await cache.set("folder:9:alice", b"d", ttl=TTL, tags=["folder:9"])

    assert await cache.invalidate_tags("product:1") == 2
    assert await cache.get("product:1:alice") is None
    assert await cache.get("product:1:bob") is None
    assert await cache.get("product:2:alice") == b"c"
    assert await cache.get("folder:9:alice") == b"d"

    assert await cache.invalidate_tags("viewer:alice", "folder:9") == 2
    assert await cache.count() == 0
    assert (await cache.stats()).current_size_bytes == 0


async def test_invalidating_an_unknown_tag_drops_nothing(cache: ResourceCache) -> None:
    await cache.set("k", b"v", ttl=TTL, tags=["t"])
    assert await cache.invalidate_tags("other") == 0
    assert await cache.get("k") == b"v"


async def test_a_tagged_fill_is_refused_within_the_guard_after_invalidation(harness: Harness) -> None:
    # A read that started before a write committed must not store the old state after
    # the write's invalidation.
    cache = harness.make(fill_guard=0.3)
    await cache.invalidate_tags("product:1")
    assert not await cache.set("product:1:u", b"stale", ttl=TTL, tags=["product:1"])
    assert await cache.set("product:2:u", b"other", ttl=TTL, tags=["product:2"])
    assert await cache.set("untagged", b"x", ttl=TTL)
    await harness.advance(0.4)
    assert await cache.set("product:1:u", b"fresh", ttl=TTL, tags=["product:1"])
    assert await cache.get("product:1:u") == b"fresh"


async def test_pattern_invalidation_drops_matching_keys_only(cache: ResourceCache) -> None:
    for key in ("product:1:alice", "product:1:bob", "product:2:alice", "folder:1:alice", "products:1:x"):
        await cache.set(key, b"v", ttl=TTL)
    assert await cache.invalidate_pattern("product:1:*") == 2
    assert await cache.invalidate_pattern("product:*") == 1
    assert await cache.get("folder:1:alice") == b"v"
    assert await cache.get("products:1:x") == b"v"
    assert await cache.invalidate_pattern("*") == 2
    assert await cache.count() == 0


async def test_the_byte_budget_evicts_the_oldest_and_counts_evictions(harness: Harness) -> None:
    cache = harness.make(max_bytes=30)  # three 10-byte entries fit, four do not
    for name in ("k1", "k2", "k3"):
        assert await cache.set(name, b"12345678", ttl=TTL)
    assert (await cache.stats()).current_size_bytes == 30

    assert await cache.set("k4", b"12345678", ttl=TTL)
    stats = await cache.stats()
    assert stats.evicted_entries == 1
    assert stats.current_size_bytes == 30
    assert stats.max_size_bytes == 30
    assert [await cache.get(name) is not None for name in ("k1", "k2", "k3", "k4")] == [
        False,
        True,
        True,
        True,
    ]


async def test_an_entry_larger_than_the_budget_is_refused_and_its_old_value_dropped(
    harness: Harness,
) -> None:
    cache = harness.make(max_bytes=20)
    await cache.set("k", b"small", ttl=TTL)
    assert not await cache.set("k", b"x" * 20, ttl=TTL)
    assert await cache.get("k") is None
    assert (await cache.stats()).current_size_bytes == 0


async def test_stats_count_hits_and_misses_exactly(cache: ResourceCache) -> None:
    assert (await cache.stats()).hit_rate == 0.0
    await cache.set("k", b"value", ttl=TTL)
    for _ in range(3):
        await cache.get("k")
    await cache.get("missing")
    stats = await cache.stats()
    assert (stats.total_requests, stats.cache_hits, stats.cache_misses) == (4, 3, 1)
    assert stats.hit_rate == 0.75
    assert stats.current_size_bytes == len("k") + len("value")
    assert stats.evicted_entries == 0

    await cache.get("missing")
    assert (await cache.stats()).hit_rate == 0.6


async def test_hit_rate_is_rounded_to_four_places(cache: ResourceCache) -> None:
    await cache.set("k", b"v", ttl=TTL)
    await cache.get("k")
    await cache.get("x")
    await cache.get("y")
    assert (await cache.stats()).hit_rate == 0.3333


async def test_hottest_lists_the_most_requested_keys_first(cache: ResourceCache) -> None:
    for key, times in (("cold", 1), ("hot", 5), ("warm", 3), ("tepid", 2)):
        for _ in range(times):
            await cache.get(key)
    assert await cache.hottest(3) == ["hot", "warm", "tepid"]
    assert await cache.hottest(0) == []


async def test_one_viewers_entry_is_never_returned_for_another_viewer(cache: ResourceCache) -> None:
    product = uuid.uuid4()
    alice, bob = uuid.uuid4(), uuid.uuid4()
    alices = entry_for("product", product, viewer=alice, in_folder_tree=False)
    await cache.set(alices.key, b"alice's view", ttl=TTL, tags=alices.tags)
    assert await cache.get(resource_key("product", product, viewer=bob)) is None
    assert await cache.get(resource_key("product", product, viewer=alice)) == b"alice's view"


async def test_clear_drops_every_entry_and_keeps_statistics(cache: ResourceCache) -> None:
    await cache.set("a", b"1", ttl=TTL, tags=["t"])
    await cache.set("b", b"2", ttl=TTL)
    await cache.get("a")
    await cache.clear()
    assert await cache.count() == 0
    assert await cache.get("a") is None
    stats = await cache.stats()
    assert (stats.cache_hits, stats.cache_misses, stats.current_size_bytes) == (1, 1, 0)
    assert await cache.invalidate_tags("t") == 0
