"""What only the local backend promises: where objects live and who may read them."""

from __future__ import annotations

import stat
from pathlib import Path

from keel.platform.storage import LocalStorage
from tests.platform.storage.conftest import read_all, upload


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_an_object_is_stored_under_two_fan_out_levels(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    source, sha256 = await upload(storage, b"fan out")
    await storage.put(source, sha256)

    expected = tmp_path / "objects" / sha256[:2] / sha256[2:4] / sha256
    assert storage.path_of(sha256) == expected
    assert expected.read_bytes() == b"fan out"


async def test_uploads_are_written_beside_the_objects(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    assert storage.temp_dir == tmp_path / "tmp"
    assert storage.temp_dir.stat().st_dev == (tmp_path / "objects").stat().st_dev


async def test_objects_and_their_directories_are_private_whatever_the_source_mode(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "store")
    source, sha256 = await upload(storage, b"private")
    source.chmod(0o644)

    await storage.put(source, sha256)

    stored = storage.path_of(sha256)
    assert mode(stored) == 0o600
    assert mode(stored.parent) == 0o700
    assert mode(stored.parent.parent) == 0o700
    assert mode(tmp_path / "store" / "objects") == 0o700
    assert mode(storage.temp_dir) == 0o700


async def test_a_reader_keeps_its_bytes_when_the_object_is_deleted_meanwhile(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    source, sha256 = await upload(storage, b"a" * 100)
    await storage.put(source, sha256)

    chunks = await storage.open(sha256, chunk_size=10)
    assert await storage.delete(sha256)
    assert b"".join([chunk async for chunk in chunks]) == b"a" * 100


async def test_a_second_instance_on_the_same_root_sees_the_objects(tmp_path: Path) -> None:
    source, sha256 = await upload(LocalStorage(tmp_path), b"shared")
    await LocalStorage(tmp_path).put(source, sha256)
    assert b"".join(await read_all(LocalStorage(tmp_path), sha256)) == b"shared"
