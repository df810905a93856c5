"""``keel users create-admin``, run as the operator would: a subprocess on a migrated database."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import pytest

from keel.app import create_app
from tests.conftest import make_settings, migrate, serve_app
from tests.identity import PASSWORD, unique_email
from tests.test_cli import keel


@pytest.fixture
def database(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path}/keel.db"
    migrate(make_settings(database_url=url))
    return url


def create_admin(database: str, cwd: Path, *args: str) -> tuple[int, str, str]:
    result = keel(
        "users",
        "create-admin",
        *args,
        env={"KEEL_ENV": "test", "KEEL_DATABASE_URL": database, "KEEL_AUTO_MIGRATE": "false"},
        cwd=cwd,
    )
    return result.returncode, result.stdout, result.stderr


async def test_creates_an_admin_that_can_log_in(database: str, tmp_path: Path) -> None:
    email = unique_email("cli")
    code, stdout, stderr = create_admin(
        database, tmp_path, "--email", email, "--password", PASSWORD, "--full-name", "Ops"
    )
    assert code == 0, stderr
    user_id = uuid.UUID(stdout.strip())  # only the id on stdout, so scripts can capture it

    async with serve_app(create_app(make_settings(database_url=database))) as client:
        login = await client.post("/api/v2/auth/login", json={"email": email, "password": PASSWORD})
        assert login.status_code == 200
        headers = {"Authorization": f"Bearer {login.json()['data']['access_token']}"}
        me = (await client.get("/api/v2/auth/me", headers=headers)).json()["data"]
        assert (me["id"], me["role"], me["full_name"]) == (str(user_id), "admin", "Ops")
        (entry,) = (
            await client.get(
                "/api/v2/admin/audit-logs", params={"action": "user.bootstrapped"}, headers=headers
            )
        ).json()["data"]
        assert (entry["actor_type"], entry["user_id"], entry["detail"]) == (
            "system",
            str(user_id),
            {"via": "cli"},
        )


def test_a_weak_password_is_refused_with_exit_code_2(database: str, tmp_path: Path) -> None:
    email = unique_email("cli")
    code, stdout, stderr = create_admin(database, tmp_path, "--email", email, "--password", "password1234")
    assert code == 2
    assert stdout == ""
    assert "--password" in stderr
    assert "common" in stderr
    assert "Traceback" not in stderr
    with sqlite3.connect(database.removeprefix("sqlite+aiosqlite:///")) as connection:
        assert connection.execute("SELECT count(*) FROM users").fetchone() == (0,)


def test_a_password_equal_to_the_email_is_refused(database: str, tmp_path: Path) -> None:
    email = unique_email("cli")
    code, _, stderr = create_admin(database, tmp_path, "--email", email, "--password", email)
    assert code == 2
    assert "--password" in stderr


def test_an_existing_email_is_refused_with_exit_code_2(database: str, tmp_path: Path) -> None:
    email = unique_email("cli")
    assert create_admin(database, tmp_path, "--email", email, "--password", PASSWORD)[0] == 0
    code, stdout, stderr = create_admin(database, tmp_path, "--email", email.upper(), "--password", PASSWORD)
    assert code == 2
    assert stdout == ""
    assert "--email" in stderr
    assert "already exists" in stderr


def test_an_invalid_email_is_refused_with_exit_code_2(database: str, tmp_path: Path) -> None:
    code, _, stderr = create_admin(database, tmp_path, "--email", "root@localhost", "--password", PASSWORD)
    assert code == 2
    assert "--email" in stderr


def test_the_email_option_is_required(database: str, tmp_path: Path) -> None:
    code, _, stderr = create_admin(database, tmp_path, "--password", PASSWORD)
    assert code == 2
    assert "--email" in stderr


def test_an_unmigrated_database_is_reported_without_a_traceback(tmp_path: Path) -> None:
    database = f"sqlite+aiosqlite:///{tmp_path}/blank.db"
    code, _, stderr = create_admin(database, tmp_path, "--email", unique_email("cli"), "--password", PASSWORD)
    assert code == 1
    assert "keel db upgrade" in stderr
    assert "Traceback" not in stderr
