"""The audit-log query: filters, time bounds, order and pages."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from keel.users.models import Role
from tests.admin.helpers import AUDIT, get_data, patch_user, single_error
from tests.identity import Accounts, TestUser

ENTRY_FIELDS = {
    "id",
    "occurred_at",
    "actor_type",
    "actor_id",
    "user_id",
    "action",
    "resource_type",
    "resource_id",
    "outcome",
    "ip",
    "user_agent",
    "request_id",
    "detail",
}


@pytest.fixture(scope="module")
async def moderator(accounts: Accounts) -> TestUser:
    return await accounts.create(role=Role.MODERATOR)


async def failed_login(client: httpx.AsyncClient, account: TestUser) -> None:
    response = await client.post(
        "/api/v2/auth/login",
        json={"email": account.email, "password": "wrong-" + secrets.token_hex(8)},
        headers={"User-Agent": "audit-test/1.0"},
    )
    assert response.status_code == 401


async def test_entries_have_the_documented_fields(
    client: httpx.AsyncClient, moderator: TestUser, accounts: Accounts
) -> None:
    target = await accounts.create(login=False)
    await failed_login(client, target)
    (entry,) = await get_data(
        client, AUDIT, moderator.headers, user_id=str(target.id), action="auth.login.failed"
    )
    assert set(entry) == ENTRY_FIELDS
    assert (entry["user_id"], entry["outcome"], entry["actor_type"]) == (
        str(target.id),
        "failure",
        "anonymous",
    )
    assert entry["user_agent"] == "audit-test/1.0"
    assert entry["detail"] == {"email": target.email, "reason": "password"}
    assert datetime.fromisoformat(entry["occurred_at"]).tzinfo is not None


async def test_filters_combine_and_results_are_newest_first(
    client: httpx.AsyncClient, admin: TestUser, accounts: Accounts
) -> None:
    target = await accounts.create()  # logs in: auth.login.succeeded
    await failed_login(client, target)
    await failed_login(client, target)
    assert (await patch_user(client, admin, target.id, plan="pro")).status_code == 200

    everything = await get_data(client, AUDIT, admin.headers, user_id=str(target.id))
    assert [entry["action"] for entry in everything] == [
        "admin.user.updated",
        "auth.login.failed",
        "auth.login.failed",
        "auth.login.succeeded",
    ]
    stamps = [entry["occurred_at"] for entry in everything]
    assert stamps == sorted(stamps, reverse=True)

    failures = await get_data(
        client, AUDIT, admin.headers, user_id=str(target.id), action="auth.login.failed"
    )
    assert len(failures) == 2
    by_type = await get_data(client, AUDIT, admin.headers, user_id=str(target.id), resource_type="user")
    assert [entry["action"] for entry in by_type] == ["admin.user.updated"]


async def test_time_bounds_are_from_inclusive_to_exclusive(
    client: httpx.AsyncClient, admin: TestUser, accounts: Accounts
) -> None:
    target = await accounts.create(login=False)
    await failed_login(client, target)
    (entry,) = await get_data(client, AUDIT, admin.headers, user_id=str(target.id))
    moment = datetime.fromisoformat(entry["occurred_at"])

    async def count(**bounds: datetime) -> int:
        params = {key.rstrip("_"): value.isoformat() for key, value in bounds.items()}
        return len(await get_data(client, AUDIT, admin.headers, user_id=str(target.id), **params))

    assert await count(from_=moment) == 1
    assert await count(to=moment) == 0
    assert await count(to=moment + timedelta(microseconds=1)) == 1
    assert await count(from_=moment + timedelta(microseconds=1)) == 0
    # Any offset names the same instant.
    assert await count(from_=moment.astimezone(timezone(timedelta(hours=2)))) == 1


async def test_pages_carry_meta_links_and_a_link_header(
    client: httpx.AsyncClient, admin: TestUser, accounts: Accounts
) -> None:
    target = await accounts.create(login=False)
    for _ in range(3):
        await failed_login(client, target)
    response = await client.get(
        AUDIT, params={"user_id": str(target.id), "per_page": 2}, headers=admin.headers
    )
    body = response.json()
    assert len(body["data"]) == 2
    assert body["meta"]["pagination"] == {
        "total": 3,
        "page": 1,
        "per_page": 2,
        "pages": 2,
        "has_next": True,
        "has_prev": False,
    }
    assert [link["rel"] for link in body["links"]] == ["first", "next", "last"]
    assert f"user_id={target.id}" in response.headers["Link"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2026-01-01T00:00:00"}, "from"),
        ({"to": "2026-01-01T00:00:00"}, "to"),
        ({"from": "yesterday"}, "from"),
        ({"from": "1700000000"}, "from"),
        ({"to": "0.5"}, "to"),
        ({"from": "2026-01-01T00:00Z"}, "from"),
        ({"from": "2026-01-01 00:00:00Z"}, "from"),
        ({"action": "auth login"}, "action"),
        ({"action": "a" * 65}, "action"),
        ({"resource_type": "r" * 65}, "resource_type"),
        ({"user_id": "someone"}, "user_id"),
        ({"per_page": 101}, "per_page"),
        ({"page": 0}, "page"),
    ],
)
async def test_bad_parameters_are_422(
    client: httpx.AsyncClient, admin: TestUser, params: dict[str, Any], field: str
) -> None:
    response = await client.get(AUDIT, params=params, headers=admin.headers)
    assert response.status_code == 422
    error = single_error(response)
    assert (error["code"], error["field"]) == ("VALIDATION_ERROR", field)


async def test_an_unknown_action_finds_nothing(client: httpx.AsyncClient, admin: TestUser) -> None:
    response = await client.get(AUDIT, params={"action": "no.such.action"}, headers=admin.headers)
    assert response.status_code == 200
    assert response.json()["data"] == []
    assert response.json()["meta"]["pagination"]["total"] == 0


async def test_to_before_from_is_an_empty_window_not_an_error(
    client: httpx.AsyncClient, admin: TestUser
) -> None:
    params = {"from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}
    assert await get_data(client, AUDIT, admin.headers, **params) == []


@pytest.mark.parametrize(
    "moment",
    [
        "0001-01-01T00:00:00+14:00",
        "9999-12-31T23:59:59-14:00",
        "2016-12-31T23:59:60Z",
        "2026-01-01t00:00:00z",
    ],
)
async def test_every_rfc_3339_instant_is_accepted(
    client: httpx.AsyncClient, admin: TestUser, moment: str
) -> None:
    response = await client.get(AUDIT, params={"from": moment, "to": moment}, headers=admin.headers)
    assert response.status_code == 200, response.text


async def test_a_window_in_the_past_is_accepted(client: httpx.AsyncClient, admin: TestUser) -> None:
    end = datetime.now(UTC) - timedelta(days=3650)
    params = {"from": (end - timedelta(days=1)).isoformat(), "to": end.isoformat()}
    assert await get_data(client, AUDIT, admin.headers, **params) == []
