"""The bootstrap admin from KEEL_ADMIN_EMAIL / KEEL_ADMIN_PASSWORD, and the first-run hint."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from keel.audit.models import AuditLog
from keel.platform.observability.metrics import HTTPMetrics
from keel.platform.resources import Resources
from keel.settings import SettingsError
from keel.users import bootstrap
from keel.users.models import User
from tests.conftest import ClientFactory, make_settings, migrate
from tests.identity import PASSWORD, Accounts, unique_email


@asynccontextmanager
async def replicas(
    backend_settings: dict[str, Any], count: int, **overrides: Any
) -> AsyncIterator[list[Resources]]:
    """``count`` processes' worth of resources (own engine each) on the module's database."""
    settings = make_settings(**{**backend_settings, **overrides})
    opened = [Resources.open(settings, HTTPMetrics()) for _ in range(count)]
    try:
        yield opened
    finally:
        for resources in opened:
            await resources.close()


async def accounts_with(accounts: Accounts, email: str) -> list[User]:
    async with accounts.resources.db.sessionmaker() as session:
        return list((await session.execute(select(User).where(User.email == email))).scalars())


async def bootstrap_rows(accounts: Accounts, user: User) -> int:
    async with accounts.resources.db.sessionmaker() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(AuditLog)
            .where(AuditLog.user_id == user.id, AuditLog.action == "user.bootstrapped")
        )
    return int(count or 0)


async def test_start_up_creates_the_configured_admin_who_can_log_in(
    client_with: ClientFactory, client: httpx.AsyncClient, accounts: Accounts
) -> None:
    email = unique_email("boot")
    async with client_with(admin_email=email.upper(), admin_password=PASSWORD):
        pass
    (user,) = await accounts_with(accounts, email)
    assert (user.role, user.is_active, user.full_name) == ("admin", True, bootstrap.DEFAULT_FULL_NAME)
    login = await client.post("/api/v2/auth/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200
    token = login.json()["data"]["access_token"]
    stats = await client.get("/api/v2/admin/stats", headers={"Authorization": f"Bearer {token}"})
    assert stats.status_code == 200


async def test_the_bootstrap_is_audited_as_a_system_action(
    backend_settings: dict[str, Any], accounts: Accounts
) -> None:
    email = unique_email("boot")
    async with replicas(backend_settings, 1, admin_email=email, admin_password=PASSWORD) as (resources,):
        user_id = await bootstrap.ensure_admin(resources)
    async with accounts.resources.db.sessionmaker() as session:
        row = (
            await session.execute(
                select(AuditLog).where(AuditLog.action == "user.bootstrapped", AuditLog.user_id == user_id)
            )
        ).scalar_one()
    assert (row.actor_type, row.actor_id, row.resource_id, row.detail) == (
        "system",
        None,
        str(user_id),
        {"via": "settings"},
    )


async def test_running_it_twice_keeps_one_account(
    backend_settings: dict[str, Any], accounts: Accounts
) -> None:
    email = unique_email("boot")
    async with replicas(backend_settings, 1, admin_email=email, admin_password=PASSWORD) as (resources,):
        first = await bootstrap.ensure_admin(resources)
        second = await bootstrap.ensure_admin(resources)
    assert first is not None
    assert second is None
    (user,) = await accounts_with(accounts, email)
    assert user.id == first
    assert await bootstrap_rows(accounts, user) == 1


async def test_replicas_starting_at_once_create_one_account_without_error(
    backend_settings: dict[str, Any], accounts: Accounts
) -> None:
    email = unique_email("boot")
    async with replicas(backend_settings, 5, admin_email=email, admin_password=PASSWORD) as opened:
        results = await asyncio.gather(*(bootstrap.ensure_admin(resources) for resources in opened))
    created = [result for result in results if result is not None]
    assert len(created) == 1
    (user,) = await accounts_with(accounts, email)
    assert user.id == created[0]
    assert await bootstrap_rows(accounts, user) == 1


async def test_an_existing_account_is_left_alone(
    backend_settings: dict[str, Any], accounts: Accounts
) -> None:
    existing = await accounts.create(login=False)
    async with replicas(
        backend_settings, 1, admin_email=existing.email, admin_password="Another-Secret-Phrase-9"
    ) as (resources,):
        assert await bootstrap.ensure_admin(resources) is None
    (user,) = await accounts_with(accounts, existing.email)
    assert user.role == "user"  # never promoted behind anyone's back
    assert await bootstrap_rows(accounts, user) == 0


async def test_a_weak_password_stops_start_up_naming_the_variable(backend_settings: dict[str, Any]) -> None:
    async with replicas(
        backend_settings, 1, admin_email=unique_email("boot"), admin_password="password1234"
    ) as (resources,):
        with pytest.raises(SettingsError, match="KEEL_ADMIN_PASSWORD"):
            await bootstrap.ensure_admin(resources)


async def test_an_invalid_email_stops_start_up_naming_the_variable(backend_settings: dict[str, Any]) -> None:
    async with replicas(backend_settings, 1, admin_email="not-an-address", admin_password=PASSWORD) as (
        resources,
    ):
        with pytest.raises(SettingsError, match="KEEL_ADMIN_EMAIL"):
            await bootstrap.ensure_admin(resources)


async def test_nothing_happens_without_the_settings(backend_settings: dict[str, Any]) -> None:
    async with replicas(backend_settings, 1) as (resources,):
        assert await bootstrap.ensure_admin(resources) is None


async def test_an_unreachable_database_does_not_stop_start_up(tmp_path: Path) -> None:
    settings = make_settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/missing/dir/keel.db",
        admin_email=unique_email("boot"),
        admin_password=PASSWORD,
    )
    resources = Resources.open(settings, HTTPMetrics())
    try:
        assert await bootstrap.ensure_admin(resources) is None
    finally:
        await resources.close()


# --- First-run hint of `keel serve` -------------------------------------------------------


@pytest.fixture
def empty_database(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path}/empty.db"
    migrate(make_settings(database_url=url))
    return url


async def test_the_hint_explains_how_to_create_an_account(empty_database: str) -> None:
    settings = make_settings(env="development", database_url=empty_database)
    hint = await bootstrap.first_run_hint(settings, host="0.0.0.0", port=8123)  # noqa: S104
    assert hint is not None
    assert "keel users create-admin" in hint
    assert "curl -X POST http://127.0.0.1:8123/api/v2/auth/register" in hint


async def test_no_hint_outside_development_or_with_a_bootstrap_admin(empty_database: str) -> None:
    for overrides in (
        {"env": "production", "secret_key": secrets.token_urlsafe(48)},
        {"env": "test"},
        {"env": "development", "admin_email": "boss@example.com", "admin_password": PASSWORD},
    ):
        settings = make_settings(database_url=empty_database, **overrides)
        assert await bootstrap.first_run_hint(settings, host="127.0.0.1", port=8000) is None


async def test_no_hint_once_an_account_exists(empty_database: str) -> None:
    resources = Resources.open(make_settings(database_url=empty_database), HTTPMetrics())
    try:
        await bootstrap.create_admin(
            resources.db, resources.security.passwords, email=unique_email(), password=PASSWORD, via="cli"
        )
    finally:
        await resources.close()
    settings = make_settings(env="development", database_url=empty_database)
    assert await bootstrap.first_run_hint(settings, host="127.0.0.1", port=8000) is None


async def test_no_hint_when_the_database_is_not_migrated(tmp_path: Path) -> None:
    settings = make_settings(env="development", database_url=f"sqlite+aiosqlite:///{tmp_path}/blank.db")
    assert await bootstrap.first_run_hint(settings, host="::1", port=8000) is None
