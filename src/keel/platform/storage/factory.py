"""One storage per process, chosen by configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from keel.platform.storage.base import Storage
from keel.platform.storage.local import LocalStorage
from keel.platform.storage.s3 import S3Storage


def create_storage(
    *,
    backend: Literal["local", "s3"],
    local_dir: Path,
    s3_endpoint_url: str | None,
    s3_bucket: str | None,
    s3_access_key: str | None,
    s3_secret_key: str | None,
    s3_region: str,
    s3_prefix: str,
) -> Storage:
    """``local_dir`` holds the objects of the local backend; with S3 it still holds the
    temporary files uploads are written to before they are sent."""
    if backend == "local":
        return LocalStorage(local_dir)
    if backend != "s3":
        raise ValueError(f"unknown storage backend {backend!r}: expected 'local' or 's3'")
    if not s3_bucket:
        raise ValueError("s3_bucket is required when the storage backend is 's3'")
    if (s3_access_key is None) != (s3_secret_key is None):
        raise ValueError("s3_access_key and s3_secret_key go together: set both, or neither")
    return S3Storage(
        endpoint_url=s3_endpoint_url,
        bucket=s3_bucket,
        access_key=s3_access_key,
        secret_key=s3_secret_key,
        region=s3_region,
        prefix=s3_prefix,
        temp_dir=local_dir / "tmp",
    )
