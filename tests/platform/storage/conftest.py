"""Both storage backends behind one fixture: files under a temporary directory, and a
real S3-compatible server (moto's, in a thread) whose prefix is emptied after each test."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3  # type: ignore[import-untyped]
import pytest
from moto.server import ThreadedMotoServer

from keel.platform.storage import LocalStorage, S3Storage, Storage

BUCKET = "keel-test-documents"
REGION = "us-east-1"
ACCESS_KEY = "test-access-key"
SECRET_KEY = "test-secret-key"


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_admin(s3_endpoint: str) -> Any:
    """A client of our own, to create the bucket and look into it."""
    client = boto3.session.Session().client(
        "s3",
        endpoint_url=s3_endpoint,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name=REGION,
    )
    client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture(scope="session")
def shared_s3_storage(
    s3_endpoint: str, s3_admin: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[S3Storage]:
    """One for the session: building a boto3 client costs ~0.2 s, more than most tests.
    Sync, so that ``backend`` can request it by name (an async fixture cannot be)."""
    storage = make_s3_storage(s3_endpoint, tmp_path_factory.mktemp("s3-uploads"))
    try:
        yield storage
    finally:
        asyncio.run(storage.close())


def make_s3_storage(endpoint: str, temp_dir: Path, *, bucket: str = BUCKET, prefix: str = "") -> S3Storage:
    return S3Storage(
        endpoint_url=endpoint,
        bucket=bucket,
        access_key=ACCESS_KEY,
        secret_key=SECRET_KEY,
        region=REGION,
        prefix=prefix or f"test-{uuid.uuid4().hex[:8]}/",
        temp_dir=temp_dir,
    )


@dataclass
class Backend:
    """A storage, and a way to see what it holds other than through itself."""

    name: str
    storage: Storage
    s3: Any = None

    def object_names(self) -> list[str]:
        if isinstance(self.storage, LocalStorage):
            objects = self.storage.root / "objects"
            return sorted(path.name for path in objects.rglob("*") if path.is_file())
        assert isinstance(self.storage, S3Storage)
        listing = self.s3.list_objects_v2(Bucket=self.storage.bucket, Prefix=self.storage.prefix)
        return sorted(item["Key"].rsplit("/", 1)[-1] for item in listing.get("Contents", []))


@pytest.fixture(params=["local", "s3"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "local":
        local = LocalStorage(tmp_path / "store")
        yield Backend("local", local)
        await local.close()
        return
    s3: S3Storage = request.getfixturevalue("shared_s3_storage")
    admin: Any = request.getfixturevalue("s3_admin")
    try:
        yield Backend("s3", s3, admin)
    finally:
        empty_prefix(admin, s3)
        for path in s3.temp_dir.iterdir():
            path.unlink()


def empty_prefix(admin: Any, storage: S3Storage) -> None:
    listing = admin.list_objects_v2(Bucket=storage.bucket, Prefix=storage.prefix)
    for item in listing.get("Contents", []):
        admin.delete_object(Bucket=storage.bucket, Key=item["Key"])


@pytest.fixture
def storage(backend: Backend) -> Storage:
    return backend.storage


async def upload(storage: Storage, data: bytes) -> tuple[Path, str]:
    """A temporary file holding ``data``, as an upload leaves it, and its hash."""
    path = await storage.new_temp_file()
    await asyncio.to_thread(path.write_bytes, data)
    return path, hashlib.sha256(data).hexdigest()


async def read_all(storage: Storage, sha256: str, *, chunk_size: int = 64 * 1024) -> list[bytes]:
    async with await storage.open(sha256, chunk_size=chunk_size) as chunks:
        return [chunk async for chunk in chunks]
