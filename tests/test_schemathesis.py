"""Schemathesis over the whole OpenAPI schema against a real server: no 5xx, and every
response conforms to the documented schema, status codes, content types and headers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import LiveServer

pytestmark = pytest.mark.live

MAX_EXAMPLES = os.environ.get("KEEL_SCHEMATHESIS_EXAMPLES", "60")


def test_api_conforms_to_its_schema(live_server: LiveServer, tmp_path: Path) -> None:
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "run",
        f"{live_server.url}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        MAX_EXAMPLES,
        "--seed",
        "20261122",
        "--workers",
        "2",
        "--generation-database",
        "none",
        "--report-dir",
        str(tmp_path),
        "--no-color",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
