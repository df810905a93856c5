from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from keel.platform.db.engine import Database
from keel.settings import Settings


@pytest.fixture(scope="module")
async def db(settings: Settings) -> AsyncIterator[Database]:
    """A Database of its own on the module's backend."""
    database = Database.from_settings(settings)
    yield database
    await database.dispose()
