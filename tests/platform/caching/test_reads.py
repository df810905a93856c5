"""Read-through and warming: what is stored, what is refused, what is dropped."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from keel.platform.caching import (
    FOLDER_TREE_TAG,
    Fill,
    MemoryCache,
    entry_for,
    parse_resource_key,
    read_through,
    resource_key,
    resource_tag,
    warm,
)
from tests.platform.caching.conftest import FakeClock

TTL = 60.0
PRODUCT = uuid.uuid4()
ALICE, BOB = uuid.uuid4(), uuid.uuid4()


async def test_a_miss_loads_and_stores_then_a_hit_does_not_load() -> None:
    cache = MemoryCache(10_000)
    entry = entry_for("product", PRODUCT, viewer=ALICE, in_folder_tree=True)
    loads = 0

    async def load() -> bytes:
        nonlocal loads
        loads += 1
        return b"rendered"

    assert await read_through(cache, entry, load, ttl=TTL) == b"rendered"
    assert await read_through(cache, entry, load, ttl=TTL) == b"rendered"
    assert loads == 1
    assert await cache.invalidate_tags(*entry.tags[-1:]) == 1  # the folder-tree tag


async def test_a_fill_brings_the_tags_the_loaded_row_calls_for() -> None:
    cache = MemoryCache(10_000)
    asked = entry_for("product", PRODUCT, viewer=ALICE, in_folder_tree=True)
    outside_folders = entry_for("product", PRODUCT, viewer=ALICE, in_folder_tree=False)

    async def load() -> Fill:
        return Fill(outside_folders, b"not in a folder")

    assert await read_through(cache, asked, load, ttl=TTL) == b"not in a folder"
    assert await cache.invalidate_tags(FOLDER_TREE_TAG) == 0  # spared by folder changes
    assert await cache.invalidate_tags(resource_tag("product", PRODUCT)) == 1


async def test_a_fill_for_another_key_is_returned_but_never_stored() -> None:
    cache = MemoryCache(10_000)
    asked = entry_for("product", PRODUCT, viewer=ALICE, in_folder_tree=True)

    async def load() -> Fill:
        return Fill(entry_for("product", PRODUCT, viewer=BOB, in_folder_tree=True), b"bob's view")

    assert await read_through(cache, asked, load, ttl=TTL) == b"bob's view"
    assert await cache.count() == 0


async def test_nothing_is_stored_when_the_load_finds_nothing() -> None:
    cache = MemoryCache(10_000)
    entry = entry_for("product", PRODUCT, viewer=ALICE, in_folder_tree=False)

    async def load() -> bytes | None:
        return None

    assert await read_through(cache, entry, load, ttl=TTL) is None
    assert await cache.count() == 0


async def test_a_load_slower_than_half_the_guard_is_returned_but_not_stored() -> None:
    clock = FakeClock()
    cache = MemoryCache(10_000, fill_guard=2.0, clock=clock)
    entry = entry_for("product", PRODUCT, viewer=ALICE, in_folder_tree=False)

    async def slow_load() -> bytes:
        clock.now += 1.0  # the database answered late: what it read may predate a write
        return b"maybe stale"

    assert await read_through(cache, entry, slow_load, ttl=TTL, clock=clock) == b"maybe stale"
    assert await cache.count() == 0


async def test_a_load_racing_a_write_does_not_store_the_old_state() -> None:
    cache = MemoryCache(10_000, fill_guard=5.0)
    entry = entry_for("product", PRODUCT, viewer=BOB, in_folder_tree=False)

    async def load_then_access_revoked() -> bytes:
        # Bob's read saw the product; before it stores, the owner revokes Bob's access
        # and the revoke's commit invalidates the product.
        await cache.invalidate_tags(*entry.tags[:1])
        return b"bob may see it"

    await read_through(cache, entry, load_then_access_revoked, ttl=TTL)
    assert await cache.get(entry.key) is None


async def test_warming_reloads_the_most_requested_keys_and_drops_the_lost_ones() -> None:
    cache = MemoryCache(10_000)
    alice_key = resource_key("product", PRODUCT, viewer=ALICE)
    bob_key = resource_key("product", PRODUCT, viewer=BOB)
    for key, times in ((alice_key, 3), (bob_key, 2), ("cold", 1)):
        for _ in range(times):
            await cache.get(key)
    await cache.set(bob_key, b"bob's old view", ttl=TTL)
    loaded: list[str] = []

    async def load(key: str) -> Fill | None:
        loaded.append(key)
        parts = parse_resource_key(key)
        assert parts is not None
        if parts.viewer == str(BOB):
            return None  # Bob lost access since
        entry = entry_for(parts.kind, parts.resource_id, viewer=parts.viewer, in_folder_tree=False)
        return Fill(entry, b"alice's view")

    before = datetime.now(UTC)
    report = await warm(cache, load, limit=2, ttl=TTL)
    assert loaded == [alice_key, bob_key]
    assert (report.status, report.warmed_entries) == ("completed", 1)
    assert report.duration_ms >= 0
    assert report.timestamp >= before
    assert await cache.get(alice_key) == b"alice's view"
    assert await cache.get(bob_key) is None


async def test_warming_refuses_a_fill_for_another_key() -> None:
    cache = MemoryCache(10_000)
    alice_key = resource_key("product", PRODUCT, viewer=ALICE)
    await cache.get(alice_key)

    async def load(key: str) -> Fill | None:
        return Fill(entry_for("product", PRODUCT, viewer=BOB, in_folder_tree=False), b"bob's view")

    report = await warm(cache, load, limit=5, ttl=TTL)
    assert report.warmed_entries == 0
    assert await cache.count() == 0
