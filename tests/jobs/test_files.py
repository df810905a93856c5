"""Job files: written whole or not at all, and purged with the jobs that link to them."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pytest

from keel.jobs import files


async def test_a_file_appears_only_when_written_whole(export_dir: Path) -> None:
    job_id = uuid.uuid4()

    async def fail_midway() -> None:
        async with files.writing(job_id, "csv") as sink:
            await sink.write(b"id,name\r\n")
            raise RuntimeError("the database went away")

    with pytest.raises(RuntimeError):
        await fail_midway()
    assert list(export_dir.iterdir()) == []  # noqa: ASYNC240 - a test's tmp dir

    async with files.writing(job_id, "csv") as sink:
        await sink.write(b"id,name\r\n")
    assert sink.bytes == 9
    assert files.path_of(job_id, "csv").read_bytes() == b"id,name\r\n"
    assert await files.download_of(job_id, {"download": "…", "format": "csv"}) is not None


async def test_only_known_formats_name_a_file() -> None:
    job_id = uuid.uuid4()
    with pytest.raises(ValueError, match="unknown file format"):
        files.path_of(job_id, "../../etc/passwd")
    assert await files.download_of(job_id, {"download": "…", "format": "../x"}) is None
    assert await files.download_of(job_id, {"rows": 3}) is None


async def test_files_older_than_the_cutoff_are_purged(export_dir: Path) -> None:
    old, new = uuid.uuid4(), uuid.uuid4()
    for job_id in (old, new):
        async with files.writing(job_id, "ndjson") as sink:
            await sink.write(b"{}\n")
    week_ago = time.time() - 7 * 86400
    os.utime(files.path_of(old, "ndjson"), (week_ago, week_ago))
    assert await files.purge_older_than(time.time() - 86400) == 1
    assert [path.name for path in export_dir.iterdir()] == [f"{new}.ndjson"]  # noqa: ASYNC240


async def test_purging_a_missing_directory_is_a_no_op(tmp_path: Path) -> None:
    assert await files.purge_older_than(time.time(), root=tmp_path / "never-written") == 0
