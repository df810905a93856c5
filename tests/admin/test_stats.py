"""Dashboard counts: accounts by role, plan and status, and logins in the last 24 hours."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import event

from keel.users.models import Plan, Role
from tests.admin.helpers import STATS, get_data, patch_user
from tests.identity import Accounts, TestUser


async def stats(client: httpx.AsyncClient, admin: TestUser) -> dict[str, Any]:
    data: dict[str, Any] = await get_data(client, STATS, admin.headers)
    return data


async def test_every_role_and_plan_is_reported_and_they_add_up(
    client: httpx.AsyncClient, admin: TestUser
) -> None:
    users = (await stats(client, admin))["users"]
    assert set(users["by_role"]) == {role.value for role in Role}
    assert set(users["by_plan"]) == {plan.value for plan in Plan}
    assert sum(users["by_role"].values()) == users["total"] == sum(users["by_plan"].values())
    assert 1 <= users["active"] <= users["total"]


async def test_account_counts_follow_creation_and_changes(
    client: httpx.AsyncClient, admin: TestUser, accounts: Accounts
) -> None:
    before = (await stats(client, admin))["users"]
    target = await accounts.create(role=Role.MODERATOR, login=False)
    assert (await patch_user(client, admin, target.id, plan="pro", is_active=False)).status_code == 200
    after = (await stats(client, admin))["users"]
    assert after["total"] - before["total"] == 1
    assert after["active"] - before["active"] == 0
    assert after["by_role"]["moderator"] - before["by_role"]["moderator"] == 1
    assert after["by_plan"]["pro"] - before["by_plan"]["pro"] == 1
    assert after["by_plan"]["free"] == before["by_plan"]["free"]


async def test_logins_and_failed_logins_move_by_one(
    client: httpx.AsyncClient, admin: TestUser, accounts: Accounts
) -> None:
    target = await accounts.create(login=False)
    before = await stats(client, admin)
    assert (await accounts.login(target)).status_code == 200
    after_login = await stats(client, admin)
    wrong = await client.post(
        "/api/v2/auth/login", json={"email": target.email, "password": "not-it-at-all!"}
    )
    assert wrong.status_code == 401
    after_failure = await stats(client, admin)
    assert (after_login["logins_24h"] - before["logins_24h"], after_login["failed_logins_24h"]) == (
        1,
        before["failed_logins_24h"],
    )
    assert (
        after_failure["logins_24h"],
        after_failure["failed_logins_24h"] - before["failed_logins_24h"],
    ) == (
        after_login["logins_24h"],
        1,
    )


async def test_stats_use_a_few_aggregate_queries(
    client: httpx.AsyncClient, admin: TestUser, accounts: Accounts
) -> None:
    await get_data(client, STATS, admin.headers)  # warm the principal cache
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(str(args[2]))

    engine = accounts.resources.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        await get_data(client, STATS, admin.headers)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    selects = [statement for statement in statements if statement.lstrip().upper().startswith("SELECT")]
    assert len(selects) == 3, selects
    assert all("count(" in statement.lower() and "group by" in statement.lower() for statement in selects)
