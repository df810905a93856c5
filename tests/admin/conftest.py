"""Fixtures shared by the admin tests."""

from __future__ import annotations

import pytest

from keel.users.models import Role
from tests.identity import Accounts, TestUser


@pytest.fixture(scope="module")
async def admin(accounts: Accounts) -> TestUser:
    """An admin per test module (and per backend)."""
    return await accounts.create(role=Role.ADMIN)
