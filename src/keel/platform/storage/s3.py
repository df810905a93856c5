"""Objects in an S3-compatible bucket (AWS S3, MinIO, Ceph, R2, …): storage shared by
every replica and worker without a shared filesystem.

Keys are ``<prefix>objects/<sha256>``. An upload is first written and hashed on local
disk (:attr:`S3Storage.temp_dir`), then sent with boto3's ``upload_file``, which switches
to a multipart upload for large files; S3 makes an object visible only once it is
complete, so readers never see part of one. A multipart upload cut short by a crash
leaves invisible parts behind: give the bucket a lifecycle rule that aborts incomplete
multipart uploads after a day.

boto3 is synchronous, so each call runs in a worker thread. That is safe because one
low-level client is shared and boto3 documents clients as thread-safe (sessions and
resources are not, and none is kept). A large upload holds its thread for the whole
transfer. aioboto3/aiobotocore would avoid the threads but track botocore versions
tightly; boto3 alone is the ``s3`` extra.

Two concurrent puts of the same bytes may both find the key absent and both upload:
the second write replaces identical bytes and both report True.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from keel.platform.storage._temp import TempFiles, discard
from keel.platform.storage.base import DEFAULT_CHUNK_SIZE, ObjectStream, StorageNotFound, check_sha256

_MISSING_CODES = frozenset({"404", "NoSuchKey", "NotFound"})


class S3Storage(TempFiles):
    """``access_key``/``secret_key`` None: boto3's own credential chain (environment, an
    instance or task role). ``endpoint_url`` None: AWS itself; any other endpoint is
    addressed path-style, which every S3-compatible server accepts."""

    def __init__(
        self,
        *,
        endpoint_url: str | None,
        bucket: str,
        access_key: str | None,
        secret_key: str | None,
        region: str,
        prefix: str = "",
        temp_dir: Path,
    ) -> None:
        boto3, config_type, self._client_error = _import_boto3()
        config = config_type(
            region_name=region,
            # As many connections as worker threads may use them at once (asyncio's
            # default executor has at most 32).
            max_pool_connections=32,
            retries={"mode": "standard"},
            s3={"addressing_style": "path"} if endpoint_url else None,
        )
        # Built once, at start-up: creating a client reads botocore's service models.
        self._client: Any = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint_url,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            config=config,
        )
        self.bucket = bucket
        self.prefix = prefix if not prefix or prefix.endswith("/") else f"{prefix}/"
        super().__init__(temp_dir)

    def key_of(self, sha256: str) -> str:
        return f"{self.prefix}objects/{check_sha256(sha256)}"

    async def put(self, source: Path, sha256: str) -> bool:
        try:
            key = self.key_of(sha256)
            if await self._head(key) is not None:
                return False
            await asyncio.to_thread(self._client.upload_file, str(source), self.bucket, key)
            return True
        finally:
            await asyncio.to_thread(discard, source)

    async def open(self, sha256: str, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> ObjectStream:
        key = self.key_of(sha256)
        try:
            response = await asyncio.to_thread(self._client.get_object, Bucket=self.bucket, Key=key)
        except self._client_error as exc:
            if _is_missing(exc):
                raise StorageNotFound(sha256) from None
            raise
        body = response["Body"]
        return ObjectStream(body.read, body.close, chunk_size)

    async def size(self, sha256: str) -> int | None:
        return await self._head(self.key_of(sha256))

    async def exists(self, sha256: str) -> bool:
        return await self.size(sha256) is not None

    async def delete(self, sha256: str) -> bool:
        # S3 answers a delete the same whether or not the key existed: ask first.
        key = self.key_of(sha256)
        if await self._head(key) is None:
            return False
        await asyncio.to_thread(self._client.delete_object, Bucket=self.bucket, Key=key)
        return True

    async def close(self) -> None:
        await asyncio.to_thread(self._client.close)

    async def _head(self, key: str) -> int | None:
        """The object's size, or None if the key is absent."""
        try:
            response = await asyncio.to_thread(self._client.head_object, Bucket=self.bucket, Key=key)
        except self._client_error as exc:
            if _is_missing(exc):
                return None
            raise
        return int(response["ContentLength"])


def _is_missing(error: Any) -> bool:
    return error.response.get("Error", {}).get("Code") in _MISSING_CODES


def _import_boto3() -> tuple[Any, Any, type[Exception]]:
    """boto3, botocore's ``Config`` and ``ClientError``, imported only when S3 storage is
    used: boto3 is the optional ``s3`` extra."""
    try:
        import boto3  # type: ignore[import-untyped]  # noqa: PLC0415
        from botocore.config import Config  # type: ignore[import-untyped]  # noqa: PLC0415
        from botocore.exceptions import ClientError  # type: ignore[import-untyped]  # noqa: PLC0415
    except ImportError as exc:
        raise ImportError("S3 storage needs boto3: pip install 'keel[s3]'") from exc
    client_error: type[Exception] = ClientError
    return boto3, Config, client_error
