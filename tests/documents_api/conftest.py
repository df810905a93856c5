"""The documents API on both backends, with its files under the module's temporary
directory and small chunks, so a short text spans several."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from keel.settings import Settings
from tests.conftest import make_settings

CHUNK_SIZE = 120
CHUNK_OVERLAP = 30


@pytest.fixture(scope="module")
def storage_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("storage")


@pytest.fixture(scope="module")
def settings(backend_settings: dict[str, Any], storage_dir: Path) -> Settings:
    return make_settings(
        **backend_settings,
        storage_dir=storage_dir,
        document_chunk_size=CHUNK_SIZE,
        document_chunk_overlap=CHUNK_OVERLAP,
    )
