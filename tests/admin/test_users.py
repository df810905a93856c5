"""Admin account management: listing with filters and pages, reading, and changing role,
plan and status — with deactivation that ends access at once."""

from __future__ import annotations

import secrets
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from keel.api_keys.models import ApiKey
from keel.audit.models import AuditLog
from keel.platform.security.tokens import sha256_hex
from keel.users.models import Role
from tests.admin.helpers import AUDIT, ME, USERS, create_named, get_data, patch_user, single_error, user_url
from tests.identity import Accounts, TestUser

USER_FIELDS = {
    "id",
    "email",
    "full_name",
    "role",
    "plan",
    "is_active",
    "mfa_enabled",
    "last_login_at",
    "created_at",
    "updated_at",
}


@pytest.fixture(scope="module")
async def tribe(accounts: Accounts) -> tuple[str, list[uuid.UUID]]:
    """Five accounts sharing a unique tag in their e-mail, created oldest first."""
    tag = f"tribe{secrets.token_hex(4)}"
    ids = [
        await create_named(accounts, email=f"{tag}-{index}@example.com", full_name=f"Member {index}")
        for index in range(5)
    ]
    return tag, ids


def ids_of(items: list[dict[str, Any]]) -> list[str]:
    return [item["id"] for item in items]


# --- Listing ------------------------------------------------------------------------


async def test_list_is_paged_newest_first_with_meta_links_and_link_header(
    client: httpx.AsyncClient, admin: TestUser, tribe: tuple[str, list[uuid.UUID]]
) -> None:
    tag, ids = tribe
    response = await client.get(USERS, params={"q": tag, "per_page": 2, "page": 2}, headers=admin.headers)
    assert response.status_code == 200
    body = response.json()
    newest_first = [str(user_id) for user_id in reversed(ids)]
    assert ids_of(body["data"]) == newest_first[2:4]
    assert set(body["data"][0]) == USER_FIELDS
    assert body["meta"]["pagination"] == {
        "total": 5,
        "page": 2,
        "per_page": 2,
        "pages": 3,
        "has_next": True,
        "has_prev": True,
    }
    links = {link["rel"]: link["href"] for link in body["links"]}
    assert links == {
        "first": f"{USERS}?q={tag}&page=1&per_page=2",
        "prev": f"{USERS}?q={tag}&page=1&per_page=2",
        "next": f"{USERS}?q={tag}&page=3&per_page=2",
        "last": f"{USERS}?q={tag}&page=3&per_page=2",
    }
    assert all(link["method"] == "GET" for link in body["links"])
    assert response.headers["Link"] == ", ".join(f'<{href}>; rel="{rel}"' for rel, href in links.items())


async def test_following_next_links_visits_every_account_once(
    client: httpx.AsyncClient, admin: TestUser, tribe: tuple[str, list[uuid.UUID]]
) -> None:
    tag, ids = tribe
    url: str | None = f"{USERS}?q={tag}&per_page=2"
    seen: list[str] = []
    while url:
        response = await client.get(url, headers=admin.headers)
        seen += ids_of(response.json()["data"])
        url = next((link["href"] for link in response.json()["links"] if link["rel"] == "next"), None)
    assert seen == [str(user_id) for user_id in reversed(ids)]


async def test_a_page_past_the_end_is_empty_not_an_error(
    client: httpx.AsyncClient, admin: TestUser, tribe: tuple[str, list[uuid.UUID]]
) -> None:
    response = await client.get(USERS, params={"q": tribe[0], "page": 9}, headers=admin.headers)
    assert response.status_code == 200
    assert response.json()["data"] == []
    assert response.json()["meta"]["pagination"]["total"] == 5


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"page": 0}, "page"),
        ({"page": 100_001}, "page"),
        ({"per_page": 0}, "per_page"),
        ({"per_page": 101}, "per_page"),
        ({"q": "x" * 101}, "q"),
        ({"role": "emperor"}, "role"),
        ({"plan": "platinum"}, "plan"),
        ({"is_active": "maybe"}, "is_active"),
    ],
)
async def test_bad_list_parameters_are_422(
    client: httpx.AsyncClient, admin: TestUser, params: dict[str, Any], field: str
) -> None:
    response = await client.get(USERS, params=params, headers=admin.headers)
    assert response.status_code == 422
    error = single_error(response)
    assert (error["code"], error["field"]) == ("VALIDATION_ERROR", field)


async def test_q_matches_email_or_full_name_case_insensitively(
    client: httpx.AsyncClient, admin: TestUser, accounts: Accounts
) -> None:
    word = f"Zebra{secrets.token_hex(3)}"
    by_name = await create_named(accounts, email=f"plain-{secrets.token_hex(4)}@example.com", full_name=word)
    by_email = await create_named(accounts, email=f"{word.lower()}@example.com", full_name="Someone")
    found = await get_data(client, USERS, admin.headers, q=word.upper())
    assert set(ids_of(found)) == {str(by_name), str(by_email)}


async def test_q_wildcards_match_themselves(client: httpx.AsyncClient, admin: TestUser) -> None:
    assert await get_data(client, USERS, admin.headers, q="%") == []
    assert await get_data(client, USERS, admin.headers, q="_") == []


async def test_filters_by_role_plan_and_status(
    client: httpx.AsyncClient, admin: TestUser, accounts: Accounts
) -> None:
    tag = f"filt{secrets.token_hex(4)}"
    moderator = await create_named(accounts, email=f"{tag}-m@example.com", full_name="M", role=Role.MODERATOR)
    pro = await create_named(accounts, email=f"{tag}-p@example.com", full_name="P")
    gone = await create_named(accounts, email=f"{tag}-g@example.com", full_name="G")
    assert (await patch_user(client, admin, pro, plan="pro")).status_code == 200
    assert (await patch_user(client, admin, gone, is_active=False)).status_code == 200

    async def found(**params: Any) -> set[str]:
        return set(ids_of(await get_data(client, USERS, admin.headers, q=tag, **params)))

    assert await found() == {str(moderator), str(pro), str(gone)}
    assert await found(role="moderator") == {str(moderator)}
    assert await found(role="user") == {str(pro), str(gone)}
    assert await found(plan="pro") == {str(pro)}
    assert await found(is_active="false") == {str(gone)}
    assert await found(is_active="true", role="user") == {str(pro)}


async def test_v1_sees_the_list_as_items_and_total(
    client: httpx.AsyncClient, admin: TestUser, tribe: tuple[str, list[uuid.UUID]]
) -> None:
    response = await client.get(
        "/api/v1/admin/users", params={"q": tribe[0], "per_page": 2}, headers=admin.headers
    )
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"items", "total"}
    assert (len(body["items"]), body["total"]) == (2, 5)


# --- Reading one ----------------------------------------------------------------------


async def test_get_returns_the_account(
    client: httpx.AsyncClient, admin: TestUser, accounts: Accounts
) -> None:
    target = await accounts.create(login=False)
    data = await get_data(client, user_url(target.id), admin.headers)
    assert (data["id"], data["email"], data["role"], data["is_active"]) == (
        str(target.id),
        target.email,
        "user",
        True,
    )
    assert set(data) == USER_FIELDS


async def test_get_an_unknown_account_is_404(client: httpx.AsyncClient, admin: TestUser) -> None:
    response = await client.get(user_url(uuid.uuid4()), headers=admin.headers)
    assert response.status_code == 404
    assert single_error(response)["code"] == "NOT_FOUND"


async def test_get_with_a_malformed_id_is_422(client: httpx.AsyncClient, admin: TestUser) -> None:
    response = await client.get(user_url("not-a-uuid"), headers=admin.headers)
    assert response.status_code == 422
    assert single_error(response)["field"] == "user_id"


# --- Changing -----------------------------------------------------------------------


async def test_patch_an_unknown_account_is_404(client: httpx.AsyncClient, admin: TestUser) -> None:
    response = await patch_user(client, admin, uuid.uuid4(), plan="pro")
    assert response.status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"email": "new@example.com"}, "email"),
        ({"password_hash": "x"}, "password_hash"),
        ({"role": "user", "is_admin": True}, "is_admin"),
        ({"role": None}, "role"),
        ({"is_active": None}, "is_active"),
        ({"role": "emperor"}, "role"),
        ({"plan": "platinum"}, "plan"),
    ],
)
async def test_patch_refuses_other_fields_nulls_and_unknown_values(
    client: httpx.AsyncClient, admin: TestUser, accounts: Accounts, body: dict[str, Any], field: str
) -> None:
    target = await accounts.create(login=False)
    response = await client.patch(user_url(target.id), json=body, headers=admin.headers)
    assert response.status_code == 422
    assert single_error(response)["field"] == field
    assert (await get_data(client, user_url(target.id), admin.headers))["role"] == "user"


async def test_patch_changes_only_what_was_sent(
    client: httpx.AsyncClient, admin: TestUser, accounts: Accounts
) -> None:
    target = await accounts.create(login=False)
    response = await patch_user(client, admin, target.id, plan="enterprise")
    assert response.status_code == 200
    data = response.json()["data"]
    assert (data["plan"], data["role"], data["is_active"]) == ("enterprise", "user", True)


async def test_a_role_change_applies_to_the_next_request(
    client: httpx.AsyncClient, admin: TestUser, accounts: Accounts
) -> None:
    target = await accounts.create()
    assert (await client.get(AUDIT, headers=target.headers)).status_code == 403  # cached as a user now
    assert (await patch_user(client, admin, target.id, role="moderator")).status_code == 200
    assert (await client.get(AUDIT, headers=target.headers)).status_code == 200
    assert (await patch_user(client, admin, target.id, role="guest")).status_code == 200
    assert (await client.get(AUDIT, headers=target.headers)).status_code == 403


async def test_every_change_is_audited_with_old_and_new_values(
    client: httpx.AsyncClient, admin: TestUser, accounts: Accounts
) -> None:
    target = await accounts.create(login=False)
    response = await patch_user(client, admin, target.id, role="moderator", plan="pro", is_active=True)
    assert response.status_code == 200
    (row,) = await get_data(client, AUDIT, admin.headers, user_id=str(target.id), action="admin.user.updated")
    assert row["detail"] == {"changes": {"role": ["user", "moderator"], "plan": ["free", "pro"]}}
    assert (row["actor_type"], row["actor_id"], row["resource_type"], row["resource_id"]) == (
        "user",
        str(admin.id),
        "user",
        str(target.id),
    )
    assert row["outcome"] == "success"
    assert row["request_id"] == response.headers["X-Request-ID"]


async def test_a_change_to_the_same_values_is_not_audited(
    client: httpx.AsyncClient, admin: TestUser, accounts: Accounts
) -> None:
    target = await accounts.create(login=False)
    assert (await patch_user(client, admin, target.id, role="user", is_active=True)).status_code == 200
    assert (await patch_user(client, admin, target.id)).status_code == 200
    rows = await get_data(client, AUDIT, admin.headers, user_id=str(target.id), action="admin.user.updated")
    assert rows == []


# --- Deactivation -------------------------------------------------------------------


async def add_api_key(accounts: Accounts, owner: TestUser) -> str:
    # No API-key service to build it through yet: the row as that service stores it.
    secret = f"keel_{secrets.token_urlsafe(32)}"
    async with accounts.resources.db.sessionmaker() as session:
        session.add(
            ApiKey(
                user_id=owner.id,
                name="ci",
                prefix=secret[:12],
                key_hash=sha256_hex(secret),
                scopes=["profile:read"],
            )
        )
        await session.commit()
    return secret


async def test_deactivation_ends_tokens_keys_and_logins_at_once(
    client: httpx.AsyncClient, admin: TestUser, accounts: Accounts
) -> None:
    target = await accounts.create()
    secret = await add_api_key(accounts, target)
    # Both principals are now in this process's cache.
    assert (await client.get(ME, headers=target.headers)).status_code == 200
    assert (await client.get(ME, headers={"X-API-Key": secret})).status_code == 200

    response = await patch_user(client, admin, target.id, is_active=False)
    assert response.status_code == 200
    assert response.json()["data"]["is_active"] is False

    assert (await client.get(ME, headers=target.headers)).status_code == 401
    assert (await client.get(ME, headers={"X-API-Key": secret})).status_code == 401
    refresh = await client.post("/api/v2/auth/refresh", json={"refresh_token": target.refresh_token})
    assert refresh.status_code == 401
    login = await accounts.login(target)
    assert login.status_code == 401
    assert single_error(login)["code"] == "INVALID_CREDENTIALS"


async def test_deactivation_is_audited_with_the_sessions_it_ended(
    client: httpx.AsyncClient, admin: TestUser, accounts: Accounts
) -> None:
    target = await accounts.create()
    await accounts.login(target)  # a second session
    assert (await patch_user(client, admin, target.id, is_active=False)).status_code == 200
    async with accounts.resources.db.sessionmaker() as session:
        detail = (
            await session.execute(
                select(AuditLog.detail).where(
                    AuditLog.user_id == target.id, AuditLog.action == "admin.user.updated"
                )
            )
        ).scalar_one()
    assert detail == {"changes": {"is_active": [True, False]}, "sessions_revoked": 2}


async def test_a_reactivated_account_can_log_in_again(
    client: httpx.AsyncClient, admin: TestUser, accounts: Accounts
) -> None:
    target = await accounts.create()
    assert (await patch_user(client, admin, target.id, is_active=False)).status_code == 200
    assert (await patch_user(client, admin, target.id, is_active=True)).status_code == 200
    assert (await accounts.login(target)).status_code == 200
    assert (await client.get(ME, headers=target.headers)).status_code == 200


async def test_patch_refuses_numbers_for_booleans(client: httpx.AsyncClient, accounts: Accounts) -> None:
    admin = await accounts.create(role=Role.ADMIN)
    target = await accounts.create(login=False)
    response = await client.patch(
        f"/api/v2/admin/users/{target.id}", headers=admin.headers, json={"is_active": 0}
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "is_active"
