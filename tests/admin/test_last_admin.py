"""There is always an active admin: the last one can be neither demoted nor deactivated,
not even by two admins demoting each other at the same moment.

The database is shared with other tests, which create admins of their own. Each test
here first makes its fresh admins the only active ones (demoting the others, which is
itself allowed) and restores the others afterwards, so no test depends on order.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from keel.admin.schemas import AdminUserUpdate
from keel.audit.service import SYSTEM
from keel.platform.db.engine import SQLITE_BEGIN_OPTION
from keel.platform.http.errors import KeelError
from keel.platform.security.permissions import effective_permissions
from keel.platform.security.principal import Principal
from keel.users import admin as users_admin
from keel.users.models import Role
from tests.admin.helpers import STATS, USERS, patch_user, single_error
from tests.identity import Accounts, TestUser


async def active_admin_ids(client: httpx.AsyncClient, admin: TestUser) -> list[str]:
    ids: list[str] = []
    url: str | None = f"{USERS}?role=admin&is_active=true&per_page=100"
    while url:
        response = await client.get(url, headers=admin.headers)
        assert response.status_code == 200, response.text
        ids += [item["id"] for item in response.json()["data"]]
        url = next((link["href"] for link in response.json()["links"] if link["rel"] == "next"), None)
    return ids


async def is_admin(client: httpx.AsyncClient, account: TestUser) -> bool:
    return (await client.get(STATS, headers=account.headers)).status_code == 200


async def logs_in_as_admin(client: httpx.AsyncClient, accounts: Accounts, account: TestUser) -> bool:
    return (await accounts.login(account)).status_code == 200 and await is_admin(client, account)


@asynccontextmanager
async def only_admins(
    client: httpx.AsyncClient, accounts: Accounts, count: int
) -> AsyncIterator[list[TestUser]]:
    """``count`` fresh admins who are, inside the block, the only active admins."""
    fresh = [await accounts.create(role=Role.ADMIN) for _ in range(count)]
    fresh_ids = {str(admin.id) for admin in fresh}
    others = [user_id for user_id in await active_admin_ids(client, fresh[0]) if user_id not in fresh_ids]
    for user_id in others:
        assert (await patch_user(client, fresh[0], user_id, role="user")).status_code == 200
    try:
        yield fresh
    finally:
        # A fresh login: a test may have ended the survivor's sessions (deactivation).
        survivor = None
        for admin in fresh:
            if await logs_in_as_admin(client, accounts, admin):
                survivor = admin
                break
        assert survivor is not None
        for user_id in others:
            assert (await patch_user(client, survivor, user_id, role="admin")).status_code == 200


def assert_last_admin_conflict(response: httpx.Response) -> None:
    assert response.status_code == 409, response.text
    error = single_error(response)
    assert error["code"] == "CONFLICT"
    assert "last active admin" in error["message"]


async def test_the_last_admin_cannot_demote_or_deactivate_themselves(
    client: httpx.AsyncClient, accounts: Accounts
) -> None:
    async with only_admins(client, accounts, 1) as (admin,):
        assert_last_admin_conflict(await patch_user(client, admin, admin.id, role="moderator"))
        assert_last_admin_conflict(await patch_user(client, admin, admin.id, is_active=False))
        assert_last_admin_conflict(await patch_user(client, admin, admin.id, role="admin", is_active=False))
        assert await is_admin(client, admin)
        # Changes that keep them an active admin are fine.
        response = await patch_user(client, admin, admin.id, role="admin", plan="enterprise")
        assert response.status_code == 200
        assert response.json()["data"]["plan"] == "enterprise"


async def test_an_admin_may_step_down_while_another_remains(
    client: httpx.AsyncClient, accounts: Accounts
) -> None:
    async with only_admins(client, accounts, 2) as (first, second):
        assert (await patch_user(client, first, first.id, role="user")).status_code == 200
        assert not await is_admin(client, first)
        assert_last_admin_conflict(await patch_user(client, second, second.id, role="user"))


async def test_a_deactivated_admin_does_not_count(client: httpx.AsyncClient, accounts: Accounts) -> None:
    async with only_admins(client, accounts, 2) as (first, second):
        assert (await patch_user(client, first, second.id, is_active=False)).status_code == 200
        assert_last_admin_conflict(await patch_user(client, first, first.id, role="user"))
        # Reactivating brings the count back.
        assert (await patch_user(client, first, second.id, is_active=True)).status_code == 200
        assert (await patch_user(client, first, first.id, role="user")).status_code == 200


async def test_two_admins_demoting_each_other_at_once_leave_one_admin(
    client: httpx.AsyncClient, accounts: Accounts
) -> None:
    async with only_admins(client, accounts, 2) as (first, second):
        # Both principals cached as admins, so both requests are authorised at once.
        assert await is_admin(client, first)
        assert await is_admin(client, second)
        responses = await asyncio.gather(
            patch_user(client, first, second.id, role="user"),
            patch_user(client, second, first.id, role="user"),
        )
        # The loser is refused by the rule (409) or, if the winner committed before
        # its request was authorised, because it is no longer an admin (403).
        statuses = sorted(response.status_code for response in responses)
        assert statuses in ([200, 403], [200, 409]), statuses
        assert [await is_admin(client, admin) for admin in (first, second)].count(True) == 1


async def test_two_admins_deactivating_themselves_at_once_leave_one_admin(
    client: httpx.AsyncClient, accounts: Accounts
) -> None:
    async with only_admins(client, accounts, 2) as (first, second):
        responses = await asyncio.gather(
            patch_user(client, first, first.id, is_active=False),
            patch_user(client, second, second.id, is_active=False),
        )
        statuses = sorted(response.status_code for response in responses)
        assert statuses in ([200, 401], [200, 409]), statuses


async def demote(accounts: Accounts, actor: TestUser, target: TestUser) -> str:
    """The service call of PATCH /admin/users/{id} in its own transaction, as a request
    runs it; returns "ok" or the error code."""
    resources = accounts.resources
    principal = Principal(
        user_id=actor.id, role="admin", plan="free", permissions=effective_permissions("admin")
    )
    async with resources.db.sessionmaker() as session:
        if resources.db.is_sqlite:
            await session.connection(execution_options={SQLITE_BEGIN_OPTION: "IMMEDIATE"})
        try:
            await users_admin.update_account(
                session,
                principal,
                resources=resources,
                user_id=target.id,
                changes=AdminUserUpdate(role=Role.USER),
                meta=SYSTEM,
            )
        except KeelError as exc:
            await session.rollback()
            return exc.code
        await session.commit()
        return "ok"


async def test_concurrent_demotions_are_serialised_by_the_database(
    client: httpx.AsyncClient, accounts: Accounts
) -> None:
    """Both transactions get past authorisation; the row locks (PostgreSQL) or the
    write lock (SQLite) make the second one count again after the first committed."""
    async with only_admins(client, accounts, 2) as (first, second):
        outcomes = await asyncio.gather(demote(accounts, first, second), demote(accounts, second, first))
        assert sorted(outcomes) == ["CONFLICT", "ok"]
