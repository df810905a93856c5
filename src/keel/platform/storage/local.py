"""Objects as files under one directory: the embedded default, and any shared volume.

Layout: ``<root>/objects/ab/cd/<sha256>`` (two fan-out levels keep directories small)
and ``<root>/tmp/`` for uploads in progress. ``tmp`` sits on the same filesystem as the
objects, so storing an upload is a rename, which POSIX makes atomic: a reader finds the
whole object or none. The file is fsynced before the rename and its directory after, so
a crash never leaves a name pointing at unwritten data. Files are 0600 and directories
0700: the store is for this service's user alone.

Every disk operation runs in a worker thread; each call works on its own paths and file
objects, so the threads share nothing. A put runs as one thread call (check, fsync,
rename, fsync) to pay for one hop, not four.

Two concurrent puts of the same bytes may both see the object absent and both rename:
the second replaces identical bytes, readers keep whichever inode they opened, and both
report True.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from keel.platform.storage._temp import TempFiles, discard
from keel.platform.storage.base import DEFAULT_CHUNK_SIZE, ObjectStream, StorageNotFound, check_sha256


class LocalStorage(TempFiles):
    def __init__(self, root: Path) -> None:
        self.root = root
        self._objects = root / "objects"
        self._objects.mkdir(mode=0o700, parents=True, exist_ok=True)
        super().__init__(root / "tmp")

    def path_of(self, sha256: str) -> Path:
        check_sha256(sha256)
        return self._objects / sha256[:2] / sha256[2:4] / sha256

    async def put(self, source: Path, sha256: str) -> bool:
        try:
            target = self.path_of(sha256)
            return await asyncio.to_thread(self._publish, source, target)
        finally:
            await asyncio.to_thread(discard, source)

    async def open(self, sha256: str, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> ObjectStream:
        path = self.path_of(sha256)
        try:
            file = await asyncio.to_thread(path.open, "rb")
        except FileNotFoundError:
            raise StorageNotFound(sha256) from None
        return ObjectStream(file.read, file.close, chunk_size)

    async def size(self, sha256: str) -> int | None:
        path = self.path_of(sha256)
        try:
            stat = await asyncio.to_thread(path.stat)
        except FileNotFoundError:
            return None
        return stat.st_size

    async def exists(self, sha256: str) -> bool:
        return await self.size(sha256) is not None

    async def delete(self, sha256: str) -> bool:
        # No directory fsync: a delete lost in a crash leaves an object nothing refers to,
        # which is waste, not damage.
        path = self.path_of(sha256)
        try:
            await asyncio.to_thread(path.unlink)
        except FileNotFoundError:
            return False
        return True

    async def close(self) -> None:
        return None

    def _publish(self, source: Path, target: Path) -> bool:
        if target.exists():
            return False
        fd = os.open(source, os.O_RDONLY)
        try:
            os.fchmod(fd, 0o600)
            os.fsync(fd)
        finally:
            os.close(fd)
        self._make_dirs(target.parent)
        os.replace(source, target)
        _fsync_dir(target.parent)
        return True

    def _make_dirs(self, directory: Path) -> None:
        """Create the fan-out levels that are missing, each made durable in its parent."""
        for level in (directory.parent, directory):
            try:
                level.mkdir(mode=0o700)
            except FileExistsError:
                continue
            _fsync_dir(level.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
