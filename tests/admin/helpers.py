"""Shared by the admin tests: URLs and small request helpers."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from keel.users import service as users
from keel.users.models import Role
from tests.identity import PASSWORD, Accounts, TestUser

ADMIN = "/api/v2/admin"
USERS = f"{ADMIN}/users"
AUDIT = f"{ADMIN}/audit-logs"
STATS = f"{ADMIN}/stats"
ME = "/api/v2/auth/me"


def user_url(user_id: uuid.UUID | str) -> str:
    return f"{USERS}/{user_id}"


def single_error(response: httpx.Response) -> dict[str, Any]:
    errors: list[dict[str, Any]] = response.json()["errors"]
    assert len(errors) == 1, errors
    return errors[0]


async def get_data(client: httpx.AsyncClient, url: str, headers: dict[str, str], **params: Any) -> Any:
    response = await client.get(url, params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["data"]


async def patch_user(
    client: httpx.AsyncClient, admin: TestUser, target: uuid.UUID | str, **changes: Any
) -> httpx.Response:
    return await client.patch(user_url(target), json=changes, headers=admin.headers)


async def create_named(
    accounts: Accounts, *, email: str, full_name: str, role: Role = Role.USER
) -> uuid.UUID:
    """An account with a chosen name (``accounts.create`` names every account "Test <role>")."""
    async with accounts.resources.db.sessionmaker() as session:
        user = await users.create(
            session,
            accounts.resources.security.passwords,
            email=email,
            password=PASSWORD,
            full_name=full_name,
            role=role,
        )
        await session.commit()
        return user.id
