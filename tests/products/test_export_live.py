"""The export streams in constant memory: 100,000 products through a real server, with
its resident set size sampled while the body arrives."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import LiveServer

pytestmark = pytest.mark.live

ROWS = 100_000
# Generous against allocator noise, tiny against 100,000 rendered rows (~40 MB of CSV).
MAX_RSS_GROWTH_BYTES = 32 * 1024 * 1024


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def register(server: LiveServer) -> tuple[str, dict[str, str]]:
    email = f"export-{secrets.token_hex(5)}@example.com"
    password = secrets.token_urlsafe(18)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        client.post(
            "/api/v2/auth/register", json={"email": email, "password": password, "full_name": "Export"}
        ).raise_for_status()
        login = client.post("/api/v2/auth/login", json={"email": email, "password": password})
        login.raise_for_status()
    return email, {"Authorization": f"Bearer {login.json()['data']['access_token']}"}


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc to read a process's RSS")
def test_exporting_100k_rows_keeps_server_memory_flat(live_server: LiveServer) -> None:
    email, headers = register(live_server)
    # The server's own settings: on PostgreSQL it has a database of its own.
    env = {**os.environ, **live_server.env}
    subprocess.run(
        [sys.executable, "-m", "keel", "demo", "seed", "--email", email, "--products", str(ROWS)],
        env=env,
        check=True,
        capture_output=True,
        timeout=600,
    )
    pid = live_server.process.pid
    with httpx.Client(base_url=live_server.url, timeout=120, headers=headers) as client:
        # Warm-up: code paths, connection pool and allocator arenas in place before the baseline.
        client.get("/api/v2/products/export", params={"format": "csv", "max_price": "0"}).raise_for_status()
        baseline = peak = rss_bytes(pid)
        lines = 0
        with client.stream("GET", "/api/v2/products/export", params={"format": "csv"}) as response:
            assert response.status_code == 200
            assert response.headers["content-disposition"].startswith('attachment; filename="products-')
            for _line in response.iter_lines():
                lines += 1
                if lines % 5_000 == 0:
                    peak = max(peak, rss_bytes(pid))
    print(f"export of {ROWS} rows: RSS baseline {baseline / 2**20:.1f} MiB, peak {peak / 2**20:.1f} MiB")
    assert lines == ROWS + 1  # the header, then one line per product
    assert peak - baseline < MAX_RSS_GROWTH_BYTES, (baseline, peak)
