"""Schemathesis over the whole OpenAPI schema against a real server: no 5xx, and every
response conforms to the documented schema, status codes, content types and headers.

Authenticated operations run with a real bearer token. Logout runs separately with a
token of its own, so it cannot end the session the rest of the run depends on. The
events stream is left out: a response that never ends is its contract (its refusals
and headers are tested in ``tests/realtime/test_stream.py``).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import LIVE_ADMIN_DOMAIN, LiveServer

pytestmark = pytest.mark.live

# Per operation and phase, on each backend: 25 keeps `make test` well under 15 minutes
# with 80 operations; raise it (KEEL_SCHEMATHESIS_EXAMPLES=200) for a deeper run.
MAX_EXAMPLES = os.environ.get("KEEL_SCHEMATHESIS_EXAMPLES", "25")
LOGOUT = "/api/v2/auth/logout"
EVENTS_STREAM = "/api/v2/events/stream"


def bearer_token(server: LiveServer) -> str:
    """An admin's token, so admin operations are exercised too, not only refused."""
    email = f"fuzz-{secrets.token_hex(5)}@{LIVE_ADMIN_DOMAIN}"
    password = secrets.token_urlsafe(18)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        client.post(
            "/api/v2/auth/register", json={"email": email, "password": password, "full_name": "Fuzz"}
        ).raise_for_status()
        response = client.post("/api/v2/auth/login", json={"email": email, "password": password})
        response.raise_for_status()
        token: str = response.json()["data"]["access_token"]
        return token


def schemathesis(server: LiveServer, report_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "run",
        f"{server.url}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        MAX_EXAMPLES,
        "--seed",
        "20261122",
        # One worker: hypothesis under --workers 2 trips a CPython 3.11 AST
        # thread-safety crash ("AST constructor recursion depth mismatch").
        "--workers",
        "1",
        "--generation-database",
        "none",
        "--report-dir",
        str(report_dir),
        "--no-color",
        *extra,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)


def test_api_conforms_to_its_schema(live_server: LiveServer, tmp_path: Path) -> None:
    token = bearer_token(live_server)
    result = schemathesis(
        live_server,
        tmp_path,
        "-H",
        f"Authorization: Bearer {token}",
        "--exclude-path",
        LOGOUT,
        "--exclude-path",
        EVENTS_STREAM,
    )
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
    assert "Tested:" in result.stdout


def test_logout_conforms_to_its_schema(live_server: LiveServer, tmp_path: Path) -> None:
    token = bearer_token(live_server)
    result = schemathesis(
        live_server, tmp_path, "-H", f"Authorization: Bearer {token}", "--include-path", LOGOUT
    )
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
