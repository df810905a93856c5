"""The directory uploads are written to before they are stored, and the part of the
:class:`~keel.platform.storage.base.Storage` interface that serves it.

Both backends keep one: the local backend inside its root, so the final step of a put is
a rename on one filesystem; the S3 backend on local disk, so an upload is complete and
hashed before it is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import time
from pathlib import Path

_SUFFIX = ".upload"


class TempFiles:
    """Base of both backends: ``temp_dir``, ``new_temp_file`` and ``sweep_temp``."""

    def __init__(self, temp_dir: Path) -> None:
        temp_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._temp_dir = temp_dir

    @property
    def temp_dir(self) -> Path:
        return self._temp_dir

    async def new_temp_file(self) -> Path:
        return await asyncio.to_thread(self._new_temp_file)

    async def sweep_temp(self, older_than_seconds: float) -> int:
        return await asyncio.to_thread(self._sweep_temp, time.time() - older_than_seconds)

    def _new_temp_file(self) -> Path:
        path = self._temp_dir / f"{secrets.token_hex(16)}{_SUFFIX}"
        # O_EXCL: a name is never shared, even by two processes drawing the same token.
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        return path

    def _sweep_temp(self, cutoff: float) -> int:
        removed = 0
        with os.scandir(self._temp_dir) as entries:
            for entry in entries:
                if not entry.is_file(follow_symlinks=False) or not entry.name.endswith(_SUFFIX):
                    continue
                with contextlib.suppress(FileNotFoundError):  # another sweeper, or a put, was first
                    if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                        os.unlink(entry.path)
                        removed += 1
        return removed


def discard(path: Path) -> None:
    """Remove a source that was handed over, if it is still there."""
    path.unlink(missing_ok=True)
