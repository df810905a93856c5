"""What both storage backends promise, run against each."""

from __future__ import annotations

import asyncio
import hashlib
import os
import stat
import time

import pytest

from keel.platform.storage import Storage, StorageNotFound
from tests.platform.storage.conftest import Backend, read_all, upload

MISSING = hashlib.sha256(b"never stored").hexdigest()
MALFORMED = [
    "../x",
    "../" + "a" * 61,
    "A" * 64,
    MISSING.upper(),
    MISSING[:63],
    MISSING + "0",
    MISSING[:63] + "g",
    MISSING + "\n",
    "",
]


async def test_a_stored_object_streams_back_in_chunks(storage: Storage) -> None:
    data = os.urandom(5 * 1024 * 1024 + 123)
    source, sha256 = await upload(storage, data)

    assert await storage.put(source, sha256)

    chunks = await read_all(storage, sha256, chunk_size=256 * 1024)
    assert len(chunks) == 21
    assert all(len(chunk) <= 256 * 1024 for chunk in chunks)
    assert b"".join(chunks) == data


async def test_put_consumes_the_source(storage: Storage) -> None:
    source, sha256 = await upload(storage, b"contents")
    await storage.put(source, sha256)
    assert not source.exists()
    assert list(storage.temp_dir.iterdir()) == []


async def test_putting_a_stored_hash_again_returns_false_and_removes_the_source(backend: Backend) -> None:
    storage = backend.storage
    first, sha256 = await upload(storage, b"same bytes")
    again, _ = await upload(storage, b"same bytes")

    assert await storage.put(first, sha256)
    assert not await storage.put(again, sha256)

    assert not again.exists()
    assert backend.object_names() == [sha256]
    assert b"".join(await read_all(storage, sha256)) == b"same bytes"


async def test_size_and_exists_describe_a_stored_object(storage: Storage) -> None:
    source, sha256 = await upload(storage, b"12345")
    await storage.put(source, sha256)
    assert await storage.exists(sha256)
    assert await storage.size(sha256) == 5


async def test_size_and_exists_report_an_absent_object(storage: Storage) -> None:
    assert not await storage.exists(MISSING)
    assert await storage.size(MISSING) is None


async def test_an_empty_object_is_stored_and_read(storage: Storage) -> None:
    source, sha256 = await upload(storage, b"")
    assert await storage.put(source, sha256)
    assert await storage.size(sha256) == 0
    assert await read_all(storage, sha256) == []


async def test_delete_removes_the_object_and_says_whether_there_was_one(backend: Backend) -> None:
    storage = backend.storage
    source, sha256 = await upload(storage, b"to be deleted")
    await storage.put(source, sha256)

    assert await storage.delete(sha256)
    assert not await storage.exists(sha256)
    assert backend.object_names() == []
    assert not await storage.delete(sha256)


async def test_opening_a_missing_object_raises_storage_not_found(storage: Storage) -> None:
    with pytest.raises(StorageNotFound) as raised:
        await storage.open(MISSING)
    assert raised.value.sha256 == MISSING


@pytest.mark.parametrize("sha256", MALFORMED)
async def test_a_malformed_hash_is_refused_by_every_method(storage: Storage, sha256: str) -> None:
    with pytest.raises(ValueError, match="SHA-256"):
        await storage.open(sha256)
    with pytest.raises(ValueError, match="SHA-256"):
        await storage.size(sha256)
    with pytest.raises(ValueError, match="SHA-256"):
        await storage.exists(sha256)
    with pytest.raises(ValueError, match="SHA-256"):
        await storage.delete(sha256)


async def test_a_put_under_a_malformed_hash_stores_nothing_and_removes_the_source(backend: Backend) -> None:
    source, _ = await upload(backend.storage, b"smuggled")
    with pytest.raises(ValueError, match="SHA-256"):
        await backend.storage.put(source, "../../etc/passwd")
    assert not source.exists()
    assert backend.object_names() == []


async def test_concurrent_puts_of_the_same_bytes_leave_one_intact_object(backend: Backend) -> None:
    storage = backend.storage
    data = os.urandom(512 * 1024)
    sources = [await upload(storage, data) for _ in range(6)]
    sha256 = sources[0][1]

    created = await asyncio.gather(*(storage.put(path, sha256) for path, _ in sources))

    assert any(created)
    assert backend.object_names() == [sha256]
    assert b"".join(await read_all(storage, sha256)) == data
    assert list(storage.temp_dir.iterdir()) == []


async def test_a_stream_closed_early_yields_nothing_more(storage: Storage) -> None:
    source, sha256 = await upload(storage, b"x" * 10)
    await storage.put(source, sha256)

    chunks = await storage.open(sha256, chunk_size=4)
    assert await anext(chunks) == b"xxxx"
    await chunks.aclose()
    assert [chunk async for chunk in chunks] == []


async def test_a_new_temp_file_is_empty_private_and_in_the_temp_dir(storage: Storage) -> None:
    path = await storage.new_temp_file()
    assert path.parent == storage.temp_dir
    assert path.stat().st_size == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path != await storage.new_temp_file()


async def test_sweep_temp_removes_only_old_temp_files(storage: Storage) -> None:
    old, _ = await upload(storage, b"left by a crash")
    fresh, _ = await upload(storage, b"upload in progress")
    an_hour_ago = time.time() - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))
    unrelated = storage.temp_dir / "not-an-upload"
    unrelated.write_bytes(b"")
    os.utime(unrelated, (an_hour_ago, an_hour_ago))

    assert await storage.sweep_temp(older_than_seconds=600) == 1

    assert not old.exists()
    assert fresh.exists()
    assert unrelated.exists()
