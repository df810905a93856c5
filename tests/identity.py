"""Accounts for tests, built through the services (never raw SQL)."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI

from keel.platform.resources import Resources
from keel.users import service as users
from keel.users.models import Role

PASSWORD = "Correct-Horse-Battery-42"


def unique_email(tag: str = "user") -> str:
    return f"{tag}-{secrets.token_hex(6)}@example.com"


@dataclass
class TestUser:
    __test__ = False  # a helper, not a test class

    id: uuid.UUID
    email: str
    password: str
    access_token: str = ""
    refresh_token: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


class Accounts:
    """``await accounts.create(role=Role.ADMIN)`` → a user with live tokens."""

    def __init__(self, app: FastAPI, client: httpx.AsyncClient) -> None:
        self.app = app
        self.client = client

    @property
    def resources(self) -> Resources:
        resources: Resources = self.app.state.resources
        return resources

    async def create(
        self,
        *,
        role: Role = Role.USER,
        email: str | None = None,
        password: str = PASSWORD,
        login: bool = True,
    ) -> TestUser:
        email = email or unique_email(role.value)
        # writer(): on SQLite the transaction holds the write lock from its start, so a
        # background write (the statistics flush) cannot make its insert fail as locked.
        async with self.resources.db.writer() as session:
            user = await users.create(
                session,
                self.resources.security.passwords,
                email=email,
                password=password,
                full_name=f"Test {role.value}",
                role=role,
            )
            await session.commit()
            account = TestUser(id=user.id, email=email, password=password)
        if login:
            await self.login(account)
        return account

    async def login(self, account: TestUser, **extra: str) -> httpx.Response:
        response = await self.client.post(
            "/api/v2/auth/login", json={"email": account.email, "password": account.password, **extra}
        )
        if response.status_code == 200:
            data = response.json()["data"]
            account.access_token = data["access_token"]
            account.refresh_token = data["refresh_token"]
        return response
