"""Files that jobs produce for their owners to download (``GET /jobs/{id}/download``).

One file per job, ``<EXPORT_DIR>/<job_id>.<format>``, written to a temporary name beside it
and renamed into place, so a download never sees half a file. A job's result announces
its file with ``download`` and ``format``.

File I/O runs in anyio's worker threads (``anyio.open_file``): the event loop must not
block on a disk.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from anyio import AsyncFile

# There is no storage setting yet; a deployment with several hosts needs this on shared
# storage (the worker writes, any API replica serves the download).
EXPORT_DIR = Path(".keel/exports")

MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "ndjson": "application/x-ndjson"}


def directory(root: Path | None = None) -> Path:
    # Read at call time, so tests (and one day a setting) can point it elsewhere.
    return root if root is not None else EXPORT_DIR


def path_of(job_id: uuid.UUID, format: str, *, root: Path | None = None) -> Path:
    if format not in MEDIA_TYPES:
        raise ValueError(f"unknown file format {format!r}")
    return directory(root) / f"{job_id}.{format}"


def download_href(job_id: uuid.UUID) -> str:
    return f"/api/v2/jobs/{job_id}/download"


class Sink:
    """The temporary file being written, and how many bytes went into it."""

    def __init__(self, file: AsyncFile[bytes]) -> None:
        self._file = file
        self.bytes = 0

    async def write(self, chunk: bytes) -> None:
        await self._file.write(chunk)
        self.bytes += len(chunk)


@asynccontextmanager
async def writing(job_id: uuid.UUID, format: str, *, root: Path | None = None) -> AsyncIterator[Sink]:
    """Write a job's file: it appears under its name only if the block ends without error.
    A retried job simply writes it again (the rename replaces any earlier file)."""
    final = path_of(job_id, format, root=root)
    await anyio.Path(final.parent).mkdir(parents=True, exist_ok=True)
    temporary = final.with_name(f".{final.name}.{uuid.uuid4().hex}.tmp")
    try:
        async with await anyio.open_file(temporary, "wb") as file:
            yield Sink(file)
            await file.flush()
            await anyio.to_thread.run_sync(os.fsync, file.wrapped.fileno())
        await anyio.to_thread.run_sync(os.replace, temporary, final)
    finally:
        await anyio.Path(temporary).unlink(missing_ok=True)


async def download_of(job_id: uuid.UUID, result: Any, *, root: Path | None = None) -> tuple[Path, str] | None:
    """The file and media type a succeeded job's result announces, if it still exists."""
    if not isinstance(result, Mapping) or "download" not in result:
        return None
    format = result.get("format")
    if not isinstance(format, str) or format not in MEDIA_TYPES:
        return None
    path = path_of(job_id, format, root=root)
    return (path, MEDIA_TYPES[format]) if await anyio.Path(path).is_file() else None


def _purge(directory: Path, cutoff: float) -> int:
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return 0
    removed = 0
    for entry in entries:
        if entry.is_file() and entry.stat().st_mtime < cutoff:
            with contextlib.suppress(FileNotFoundError):  # another worker got there first
                os.unlink(entry.path)
                removed += 1
    return removed


async def purge_older_than(cutoff: float, *, root: Path | None = None) -> int:
    """Delete files (and temporaries a crashed worker left) last written before ``cutoff``
    (epoch seconds); how many."""
    return await anyio.to_thread.run_sync(_purge, directory(root), cutoff)
