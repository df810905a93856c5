"""The ``keel`` command line."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from keel.platform.db.migrate import head_revision


def keel(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KEEL_")}
    return subprocess.run(
        [sys.executable, "-m", "keel", *args],
        env={**clean, **(env or {})},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_serve_refuses_to_start_in_production_without_secret(tmp_path: Path) -> None:
    result = keel("serve", "--port", "1", env={"KEEL_ENV": "production"}, cwd=tmp_path)
    assert result.returncode == 2
    assert "KEEL_SECRET_KEY" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_refuses_a_bad_setting_naming_it(tmp_path: Path) -> None:
    result = keel("serve", "--port", "1", env={"KEEL_MAX_BODY_BYTES": "huge"}, cwd=tmp_path)
    assert result.returncode == 2
    assert "KEEL_MAX_BODY_BYTES" in result.stderr


def test_openapi_prints_the_schema(tmp_path: Path) -> None:
    result = keel("openapi", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    assert schema["info"]["title"] == "Keel"
    assert "/health" in schema["paths"]
    assert "ErrorEnvelope" in schema["components"]["schemas"]


def test_db_upgrade_brings_a_new_database_to_head(tmp_path: Path) -> None:
    database = tmp_path / "fresh.db"
    result = keel("db", "upgrade", env={"KEEL_DATABASE_URL": f"sqlite+aiosqlite:///{database}"}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(database) as connection:
        (version,) = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    assert version == head_revision()
