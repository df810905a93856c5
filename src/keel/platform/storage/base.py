"""What every storage backend offers: immutable objects named by the SHA-256 of their bytes.

Content addressing makes the store simple to keep correct: an object never changes once
written, two uploads of the same bytes share one object, and a name can be checked
before it reaches a path or a key. That check, :func:`check_sha256`, runs first in every
method of every backend, so nothing a client sends can walk out of the store.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Protocol

DEFAULT_CHUNK_SIZE = 64 * 1024

_SHA256 = re.compile(r"[0-9a-f]{64}")


class StorageNotFound(LookupError):
    """No object is stored under this hash."""

    def __init__(self, sha256: str) -> None:
        super().__init__(f"no stored object {sha256}")
        self.sha256 = sha256


def check_sha256(sha256: str) -> str:
    """``sha256`` if it is 64 lowercase hex digits; ``ValueError`` otherwise."""
    if not isinstance(sha256, str) or _SHA256.fullmatch(sha256) is None:
        raise ValueError(f"not a lowercase hex SHA-256: {sha256!r}")
    return sha256


class ObjectStream:
    """An opened object's bytes, chunk by chunk, each read in a worker thread.

    The handle is released when the bytes run out, when a read fails, or on
    :meth:`aclose` (``async with`` calls it): a reader that stops early — a client that
    disconnects mid-download — should close it rather than leave it to the collector.
    """

    def __init__(self, read: Callable[[int], bytes], close: Callable[[], object], chunk_size: int) -> None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be positive, not {chunk_size}")
        self._read = read
        self._close = close
        self._chunk_size = chunk_size
        self._closed = False

    def __aiter__(self) -> ObjectStream:
        return self

    async def __anext__(self) -> bytes:
        if self._closed:
            raise StopAsyncIteration
        try:
            chunk = await asyncio.to_thread(self._read, self._chunk_size)
        except BaseException:
            await self.aclose()
            raise
        if not chunk:
            await self.aclose()
            raise StopAsyncIteration
        return chunk

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await asyncio.to_thread(self._close)

    async def __aenter__(self) -> ObjectStream:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


class Storage(Protocol):
    """A content-addressed object store.

    Uploads arrive as a complete temporary file from :meth:`new_temp_file`, which the
    caller fills while computing the SHA-256 of what it writes; :meth:`put` trusts that
    hash and does not read the file again.
    """

    @property
    def temp_dir(self) -> Path:
        """Where uploads are written before :meth:`put`."""
        ...

    async def new_temp_file(self) -> Path:
        """A new empty file (mode 0600) in :attr:`temp_dir`, for one upload."""
        ...

    async def sweep_temp(self, older_than_seconds: float) -> int:
        """Remove temporary files last written more than that long ago (left by a crash
        or an abandoned upload); how many."""
        ...

    async def put(self, source: Path, sha256: str) -> bool:
        """Store the complete file ``source`` under ``sha256``; readers never see part of it.

        True if the object is new, False if it was already stored. ``source`` is removed
        whatever happens, errors included: the caller hands it over.
        """
        ...

    async def open(self, sha256: str, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> ObjectStream:
        """The object's bytes, streamed. Raises :class:`StorageNotFound` here, before the
        first chunk, so a response can still become a 404."""
        ...

    async def size(self, sha256: str) -> int | None:
        """The object's size in bytes, or None if it is not stored."""
        ...

    async def exists(self, sha256: str) -> bool: ...

    async def delete(self, sha256: str) -> bool:
        """Remove the object; whether there was one."""
        ...

    async def close(self) -> None:
        """Release connections; the storage is not used afterwards."""
        ...
