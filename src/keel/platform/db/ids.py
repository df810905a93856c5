"""Time-ordered identifiers.

UUIDv7 keeps primary keys unique across replicas without a round trip, and sorts by
creation time so B-tree inserts stay append-only. Python's ``uuid`` module gains
``uuid7`` only in 3.14; ``uuid_utils`` provides it (in Rust) for 3.11+.
"""

import uuid

from uuid_utils.compat import uuid7 as _uuid7


def new_id() -> uuid.UUID:
    return _uuid7()
