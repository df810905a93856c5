"""A document's text, read by a child process that a hostile file can only end.

``await extract_text(path, media_type, timeout_seconds=…, memory_bytes=…)`` starts
``python -m keel.documents._extract_child`` with the file, which applies kernel limits
(memory, CPU, no file writes, few descriptors) before it opens the file, and writes the
text to stdout. Here, the parent:

- kills the child when ``timeout_seconds`` pass on the wall clock (a file can also make
  a parser wait, not only compute);
- reads at most :data:`MAX_TEXT_BYTES` of text, killing the child past that;
- turns the child's exit status into :class:`ExtractionFailed` with a short reason that
  is safe to show a client (:data:`._extract_child.FAILURES`); a traceback never leaves the child.

Why a process and not a thread: pypdf and lxml run in this interpreter's memory and
hold the GIL; a bomb would take the API down with it, and a thread cannot be killed.
The child starts with an almost empty environment, so no secret of this process (database
URL, signing keys) is within reach of a parser exploit.

Each call costs a process start (about a quarter of a second with the imports): run
extractions from jobs, with bounded concurrency.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
import sys
from pathlib import Path
from typing import Final

import structlog

from keel.documents._extract_child import CORRUPT, FAILURES, MEMORY_EXCEEDED, TIMED_OUT
from keel.documents.detect import DocumentType

log = structlog.get_logger("keel.documents")

MAX_TEXT_BYTES: Final = 20 * 1024 * 1024

TEXT_TOO_LARGE: Final = "extracted text too large"

_READ_SIZE = 64 * 1024


class ExtractionFailed(Exception):
    """The file's text could not be read; ``reason`` is short and safe to show."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


async def extract_text(
    path: Path, media_type: DocumentType, *, timeout_seconds: float, memory_bytes: int
) -> str:
    """The text of the file at ``path``, read as ``media_type`` (from
    :func:`.detect.detect_type`) in a child process limited to ``memory_bytes`` of
    address space and ``timeout_seconds``. Raises :class:`ExtractionFailed`."""
    cpu_seconds = max(1, math.ceil(timeout_seconds))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "keel.documents._extract_child",
        media_type,
        str(path),
        str(memory_bytes),
        str(cpu_seconds),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        env=_child_environment(),
    )
    try:
        async with asyncio.timeout(timeout_seconds):
            assert process.stdout is not None  # noqa: S101  (stdout=PIPE above)
            data = await _read_capped(process.stdout)
            status = await process.wait()
    except TimeoutError:
        raise ExtractionFailed(TIMED_OUT) from None
    finally:
        # On timeout, on too much text, and when our caller is cancelled.
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
    if status != 0:
        raise ExtractionFailed(_reason(status))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ExtractionFailed(CORRUPT) from None


def _child_environment() -> dict[str, str]:
    # Only what Python needs to find keel; bytecode is not written (the child may not
    # write files at all).
    environment = {"PYTHONDONTWRITEBYTECODE": "1"}
    if "PYTHONPATH" in os.environ:
        environment["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return environment


async def _read_capped(stream: asyncio.StreamReader) -> bytes:
    data = bytearray()
    while chunk := await stream.read(_READ_SIZE):
        data += chunk
        if len(data) > MAX_TEXT_BYTES:
            raise ExtractionFailed(TEXT_TOO_LARGE)
    return bytes(data)


def _reason(status: int) -> str:
    if status in FAILURES:
        return FAILURES[status]
    if status == -signal.SIGXCPU:
        return TIMED_OUT
    # Not a status the child chooses: the kernel ended it (SIGKILL from the OOM killer,
    # SIGSEGV in a C parser), or it failed before its own error handling (exit 1).
    log.warning("documents.extraction.crashed", status=status)
    return MEMORY_EXCEEDED if status == -signal.SIGKILL else CORRUPT
