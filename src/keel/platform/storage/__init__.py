"""Storage for uploaded documents' bytes, named by their SHA-256: on local disk by
default, or in an S3-compatible bucket when replicas share no filesystem.

Storing an upload::

    path = await storage.new_temp_file()
    # stream the request body into ``path``, feeding each chunk to hashlib.sha256()
    created = await storage.put(path, digest.hexdigest())  # ``path`` is gone afterwards

Reading one (``open`` raises :class:`StorageNotFound` before the first byte)::

    async with await storage.open(sha256) as chunks:
        async for chunk in chunks:
            ...

The database, not the store, says which documents exist: delete an object only when no
row refers to its hash any more. Run :meth:`Storage.sweep_temp` periodically (an hour is
ample) to remove uploads a crash left half-written.
"""

from keel.platform.storage.base import (
    DEFAULT_CHUNK_SIZE,
    ObjectStream,
    Storage,
    StorageNotFound,
    check_sha256,
)
from keel.platform.storage.factory import create_storage
from keel.platform.storage.local import LocalStorage
from keel.platform.storage.s3 import S3Storage

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "LocalStorage",
    "ObjectStream",
    "S3Storage",
    "Storage",
    "StorageNotFound",
    "check_sha256",
    "create_storage",
]
