"""Choosing the backend from plain configuration values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from keel.platform.storage import LocalStorage, S3Storage, create_storage


def options(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "backend": "local",
        "local_dir": tmp_path,
        "s3_endpoint_url": None,
        "s3_bucket": None,
        "s3_access_key": None,
        "s3_secret_key": None,
        "s3_region": "us-east-1",
        "s3_prefix": "",
    }
    values.update(overrides)
    return values


async def test_local_storage_lives_in_the_local_dir(tmp_path: Path) -> None:
    storage = create_storage(**options(tmp_path))
    assert isinstance(storage, LocalStorage)
    assert storage.temp_dir == tmp_path / "tmp"


async def test_s3_storage_keeps_its_uploads_in_the_local_dir(tmp_path: Path, s3_endpoint: str) -> None:
    storage = create_storage(
        **options(
            tmp_path,
            backend="s3",
            s3_endpoint_url=s3_endpoint,
            s3_bucket="documents",
            s3_access_key="key",
            s3_secret_key="secret",
            s3_prefix="keel",
        )
    )
    try:
        assert isinstance(storage, S3Storage)
        assert storage.bucket == "documents"
        assert storage.prefix == "keel/"
        assert storage.temp_dir == tmp_path / "tmp"
    finally:
        await storage.close()


def test_s3_without_a_bucket_is_refused_naming_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="s3_bucket is required"):
        create_storage(**options(tmp_path, backend="s3"))


def test_an_s3_access_key_without_its_secret_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="go together"):
        create_storage(**options(tmp_path, backend="s3", s3_bucket="b", s3_access_key="key"))


def test_an_unknown_backend_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown storage backend 'gcs'"):
        create_storage(**options(tmp_path, backend="gcs"))
