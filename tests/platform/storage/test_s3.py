"""What only the S3 backend promises: its keys, large uploads, and failing clearly."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from boto3.exceptions import S3UploadFailedError  # type: ignore[import-untyped]

from keel.platform.storage import S3Storage
from tests.platform.storage.conftest import BUCKET, empty_prefix, make_s3_storage, read_all, upload


@pytest.fixture
async def s3(s3_endpoint: str, s3_admin: Any, tmp_path: Path) -> AsyncIterator[S3Storage]:
    storage = make_s3_storage(s3_endpoint, tmp_path / "tmp", prefix="keel/documents")
    yield storage
    empty_prefix(s3_admin, storage)
    await storage.close()


async def test_objects_are_keyed_under_the_prefix_with_a_slash_added(s3: S3Storage, s3_admin: Any) -> None:
    source, sha256 = await upload(s3, b"keyed")
    await s3.put(source, sha256)

    assert s3.prefix == "keel/documents/"
    head = s3_admin.head_object(Bucket=BUCKET, Key=f"keel/documents/objects/{sha256}")
    assert head["ContentLength"] == 5


async def test_an_empty_prefix_keys_objects_at_the_bucket_root(s3_endpoint: str, tmp_path: Path) -> None:
    storage = S3Storage(
        endpoint_url=s3_endpoint,
        bucket=BUCKET,
        access_key="k",
        secret_key="s",
        region="us-east-1",
        temp_dir=tmp_path,
    )
    try:
        assert storage.key_of("a" * 64) == f"objects/{'a' * 64}"
    finally:
        await storage.close()


async def test_a_file_above_the_multipart_threshold_is_stored_whole(s3: S3Storage) -> None:
    # boto3 switches to a multipart upload at 8 MiB.
    data = os.urandom(9 * 1024 * 1024)
    source, sha256 = await upload(s3, data)

    assert await s3.put(source, sha256)

    assert await s3.size(sha256) == len(data)
    assert b"".join(await read_all(s3, sha256, chunk_size=1024 * 1024)) == data


async def test_a_failed_put_raises_and_still_removes_the_source(s3_endpoint: str, tmp_path: Path) -> None:
    storage = make_s3_storage(s3_endpoint, tmp_path, bucket="no-such-bucket")
    source, sha256 = await upload(storage, b"nowhere to go")
    try:
        with pytest.raises(S3UploadFailedError, match="NoSuchBucket"):
            await storage.put(source, sha256)
    finally:
        await storage.close()
    assert not source.exists()


def test_without_boto3_the_error_names_the_extra_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)
    with pytest.raises(ImportError, match=r"pip install 'keel\[s3\]'"):
        make_s3_storage("http://127.0.0.1:9", tmp_path)
