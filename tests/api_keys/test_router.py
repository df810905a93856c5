"""API keys over HTTP, on both backends: the secret shown once, keys that authenticate
and can never exceed their owner, and revocation, expiry and deactivation that bite."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, update

from keel.api_keys.models import ApiKey
from keel.audit.models import AuditLog
from keel.platform.resources import Resources
from keel.platform.security.tokens import sha256_hex
from keel.users.models import Role, User
from tests.identity import Accounts, TestUser

URL = "/api/v2/api-keys"
ME = "/api/v2/auth/me"
SECRET_SHAPE = 5 + 43  # "keel_" + token_urlsafe(32)


def resources_of(app: FastAPI) -> Resources:
    resources: Resources = app.state.resources
    return resources


def key_headers(secret: str) -> dict[str, str]:
    return {"X-API-Key": secret}


async def create_key(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    scopes: list[str] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    body = {"name": "ci", "scopes": scopes or ["profile:read"], **fields}
    response = await client.post(URL, json=body, headers=headers)
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def single_error(response: httpx.Response) -> dict[str, Any]:
    errors: list[dict[str, Any]] = response.json()["errors"]
    assert len(errors) == 1, errors
    return errors[0]


# --- Creating -------------------------------------------------------------------------


async def test_create_returns_the_secret_once_with_location_and_no_store(
    client: httpx.AsyncClient, accounts: Accounts
) -> None:
    owner = await accounts.create()
    response = await client.post(
        URL, json={"name": "deploy bot", "scopes": ["products:read", "profile:read"]}, headers=owner.headers
    )
    assert response.status_code == 201
    data = response.json()["data"]
    assert data["secret"].startswith("keel_")
    assert len(data["secret"]) == SECRET_SHAPE
    assert data["prefix"] == data["secret"][:12]
    assert data["name"] == "deploy bot"
    assert data["scopes"] == ["products:read", "profile:read"]
    assert data["expires_at"] is None
    assert data["last_used_at"] is None
    assert data["revoked_at"] is None
    assert response.headers["Location"] == f"{URL}/{data['id']}"
    assert response.headers["Cache-Control"] == "no-store"


async def test_list_and_get_never_show_the_secret_or_its_hash(
    client: httpx.AsyncClient, accounts: Accounts
) -> None:
    owner = await accounts.create()
    created = await create_key(client, owner.headers)
    listed = await client.get(URL, headers=owner.headers)
    fetched = await client.get(f"{URL}/{created['id']}", headers=owner.headers)
    for response in (listed, fetched):
        assert response.status_code == 200
        assert created["secret"] not in response.text
        assert sha256_hex(created["secret"]) not in response.text
        assert "secret" not in response.text
        assert "key_hash" not in response.text
    assert [key["id"] for key in listed.json()["data"]] == [created["id"]]
    assert set(fetched.json()["data"]) == {
        "id",
        "name",
        "prefix",
        "scopes",
        "expires_at",
        "last_used_at",
        "revoked_at",
        "created_at",
    }


async def test_only_the_hash_of_the_secret_is_stored(
    client: httpx.AsyncClient, accounts: Accounts, app: FastAPI
) -> None:
    owner = await accounts.create()
    created = await create_key(client, owner.headers)
    async with resources_of(app).db.sessionmaker() as session:
        row = await session.get_one(ApiKey, uuid.UUID(created["id"]))
    assert row.key_hash == sha256_hex(created["secret"])
    assert created["secret"] not in {row.key_hash, row.prefix, row.name}


async def test_name_is_stripped_and_expiry_kept(client: httpx.AsyncClient, accounts: Accounts) -> None:
    owner = await accounts.create()
    expires = datetime.now(UTC) + timedelta(days=30)
    data = await create_key(client, owner.headers, name="  nightly  ", expires_at=expires.isoformat())
    assert data["name"] == "nightly"
    assert datetime.fromisoformat(data["expires_at"]) == expires


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"name": "x" * 101}, "name"),
        ({"name": "   "}, "name"),
        ({"scopes": ["profile:read", "profile:fly"]}, "scopes.1"),
        ({"scopes": ["profile:read", "products:read", "profile:read"]}, "scopes.2"),
        ({"scopes": []}, "scopes"),
        ({"user_id": str(uuid.uuid4())}, "user_id"),
        ({"expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
        ({"expires_at": "2099-01-01T00:00:00"}, "expires_at"),  # no UTC offset
        ({"expires_at": (datetime.now(UTC) + timedelta(days=800)).isoformat()}, "expires_at"),
    ],
    ids=[
        "name-too-long",
        "name-blank",
        "unknown-scope",
        "duplicate-scope",
        "no-scopes",
        "extra-field",
        "expiry-in-past",
        "expiry-naive",
        "expiry-beyond-two-years",
    ],
)
async def test_invalid_body_is_refused_with_the_offending_field(
    client: httpx.AsyncClient, accounts: Accounts, change: dict[str, Any], field: str
) -> None:
    owner = await accounts.create()
    response = await client.post(
        URL, json={"name": "k", "scopes": ["profile:read"], **change}, headers=owner.headers
    )
    assert response.status_code == 422
    error = single_error(response)
    assert error["code"] == "VALIDATION_ERROR"
    assert error["field"] == field


async def test_guest_cannot_create_keys(client: httpx.AsyncClient, accounts: Accounts) -> None:
    guest = await accounts.create(role=Role.GUEST)
    response = await client.post(URL, json={"name": "k", "scopes": ["profile:read"]}, headers=guest.headers)
    assert response.status_code == 403
    assert single_error(response)["code"] == "FORBIDDEN"


async def test_live_keys_are_limited_to_fifty_and_revoked_ones_do_not_count(
    client: httpx.AsyncClient, accounts: Accounts
) -> None:
    owner = await accounts.create()
    first = await create_key(client, owner.headers)
    for _ in range(49):
        await create_key(client, owner.headers)
    refused = await client.post(URL, json={"name": "k", "scopes": ["profile:read"]}, headers=owner.headers)
    assert refused.status_code == 409
    assert single_error(refused)["code"] == "CONFLICT"
    assert (await client.delete(f"{URL}/{first['id']}", headers=owner.headers)).status_code == 204
    await create_key(client, owner.headers)


# --- Using ----------------------------------------------------------------------------


async def test_key_authenticates_with_x_api_key(client: httpx.AsyncClient, accounts: Accounts) -> None:
    owner = await accounts.create()
    secret = (await create_key(client, owner.headers))["secret"]
    response = await client.get(ME, headers={"X-API-Key": secret})
    assert response.status_code == 200
    assert response.json()["data"]["id"] == str(owner.id)


async def test_key_authenticates_as_a_bearer_token(client: httpx.AsyncClient, accounts: Accounts) -> None:
    owner = await accounts.create()
    secret = (await create_key(client, owner.headers))["secret"]
    response = await client.get(ME, headers={"Authorization": f"Bearer {secret}"})
    assert response.status_code == 200
    assert response.json()["data"]["id"] == str(owner.id)


async def test_unknown_key_is_an_invalid_token(client: httpx.AsyncClient) -> None:
    response = await client.get(ME, headers=key_headers("keel_" + "A" * 43))
    assert response.status_code == 401
    assert single_error(response)["code"] == "INVALID_TOKEN"


async def test_profile_read_key_cannot_change_the_profile(
    client: httpx.AsyncClient, accounts: Accounts
) -> None:
    owner = await accounts.create()
    secret = (await create_key(client, owner.headers, ["profile:read"]))["secret"]
    assert (await client.get(ME, headers=key_headers(secret))).status_code == 200
    response = await client.patch("/api/v2/users/me", json={"full_name": "x"}, headers=key_headers(secret))
    assert response.status_code == 403
    assert single_error(response)["code"] == "FORBIDDEN"


async def test_profile_read_key_cannot_create_keys(client: httpx.AsyncClient, accounts: Accounts) -> None:
    owner = await accounts.create()
    secret = (await create_key(client, owner.headers, ["profile:read"]))["secret"]
    response = await client.post(
        URL, json={"name": "k", "scopes": ["profile:read"]}, headers=key_headers(secret)
    )
    assert response.status_code == 403


async def test_last_used_at_is_set_after_use(client: httpx.AsyncClient, accounts: Accounts) -> None:
    owner = await accounts.create()
    created = await create_key(client, owner.headers)
    before = datetime.now(UTC) - timedelta(seconds=1)
    assert (await client.get(ME, headers=key_headers(created["secret"]))).status_code == 200
    data = (await client.get(f"{URL}/{created['id']}", headers=owner.headers)).json()["data"]
    assert data["last_used_at"] is not None
    assert datetime.fromisoformat(data["last_used_at"]) >= before


# --- A key never exceeds its owner (attacks) ------------------------------------------


async def test_scope_beyond_the_owners_role_is_refused(client: httpx.AsyncClient, accounts: Accounts) -> None:
    owner = await accounts.create(role=Role.USER)
    response = await client.post(
        URL, json={"name": "k", "scopes": ["profile:read", "users:admin"]}, headers=owner.headers
    )
    assert response.status_code == 422
    error = single_error(response)
    assert error["field"] == "scopes.1"
    assert "users:admin" in error["message"]
    listed = await client.get(URL, headers=owner.headers)
    assert listed.json()["data"] == []


async def test_admin_may_create_a_key_with_admin_scopes(
    client: httpx.AsyncClient, accounts: Accounts
) -> None:
    admin = await accounts.create(role=Role.ADMIN)
    data = await create_key(client, admin.headers, ["users:admin", "profile:read"])
    assert data["scopes"] == ["users:admin", "profile:read"]


async def test_key_cannot_mint_a_key_beyond_its_own_scopes(
    client: httpx.AsyncClient, accounts: Accounts
) -> None:
    owner = await accounts.create()
    parent = await create_key(client, owner.headers, ["api_keys:write", "profile:read"])
    # products:write is in the owner's role, but not in the minting key's scopes.
    response = await client.post(
        URL, json={"name": "child", "scopes": ["products:write"]}, headers=key_headers(parent["secret"])
    )
    assert response.status_code == 422
    assert single_error(response)["field"] == "scopes.0"


async def test_key_may_mint_a_key_within_its_own_scopes(
    client: httpx.AsyncClient, accounts: Accounts
) -> None:
    owner = await accounts.create()
    parent = await create_key(client, owner.headers, ["api_keys:write", "profile:read"])
    child = await create_key(client, key_headers(parent["secret"]), ["profile:read"])
    response = await client.get(ME, headers=key_headers(child["secret"]))
    assert response.status_code == 200
    assert response.json()["data"]["id"] == str(owner.id)


async def test_key_cannot_mint_a_key_that_outlives_it(client: httpx.AsyncClient, accounts: Accounts) -> None:
    owner = await accounts.create()
    parent_expiry = datetime.now(UTC) + timedelta(days=1)
    parent = await create_key(
        client, owner.headers, ["api_keys:write", "profile:read"], expires_at=parent_expiry.isoformat()
    )
    headers = key_headers(parent["secret"])
    for expiry in (None, (parent_expiry + timedelta(seconds=1)).isoformat()):
        response = await client.post(
            URL, json={"name": "child", "scopes": ["profile:read"], "expires_at": expiry}, headers=headers
        )
        assert response.status_code == 422
        assert single_error(response)["field"] == "expires_at"
    await create_key(client, headers, ["profile:read"], expires_at=parent_expiry.isoformat())


# --- Revocation, expiry, deactivation -------------------------------------------------


async def test_revoked_key_is_refused_immediately(client: httpx.AsyncClient, accounts: Accounts) -> None:
    owner = await accounts.create()
    created = await create_key(client, owner.headers)
    headers = key_headers(created["secret"])
    assert (await client.get(ME, headers=headers)).status_code == 200  # now cached
    assert (await client.delete(f"{URL}/{created['id']}", headers=owner.headers)).status_code == 204
    response = await client.get(ME, headers=headers)
    assert response.status_code == 401
    assert single_error(response)["code"] == "INVALID_TOKEN"


async def test_key_can_revoke_itself(client: httpx.AsyncClient, accounts: Accounts) -> None:
    owner = await accounts.create()
    created = await create_key(client, owner.headers, ["api_keys:write", "profile:read"])
    headers = key_headers(created["secret"])
    assert (await client.delete(f"{URL}/{created['id']}", headers=headers)).status_code == 204
    assert (await client.get(ME, headers=headers)).status_code == 401


async def test_revoked_keys_are_listed_only_when_asked(client: httpx.AsyncClient, accounts: Accounts) -> None:
    owner = await accounts.create()
    kept = await create_key(client, owner.headers)
    revoked = await create_key(client, owner.headers)
    await client.delete(f"{URL}/{revoked['id']}", headers=owner.headers)
    default = (await client.get(URL, headers=owner.headers)).json()["data"]
    everything = (await client.get(URL, params={"include_revoked": "true"}, headers=owner.headers)).json()[
        "data"
    ]
    assert [key["id"] for key in default] == [kept["id"]]
    assert [key["id"] for key in everything] == [revoked["id"], kept["id"]]  # newest first
    assert everything[0]["revoked_at"] is not None


async def test_revoked_key_is_gone_from_get(client: httpx.AsyncClient, accounts: Accounts) -> None:
    owner = await accounts.create()
    created = await create_key(client, owner.headers)
    await client.delete(f"{URL}/{created['id']}", headers=owner.headers)
    response = await client.get(f"{URL}/{created['id']}", headers=owner.headers)
    assert response.status_code == 404
    assert single_error(response)["code"] == "NOT_FOUND"


async def test_list_is_newest_first(client: httpx.AsyncClient, accounts: Accounts) -> None:
    owner = await accounts.create()
    ids = [(await create_key(client, owner.headers, name=f"k{n}"))["id"] for n in range(3)]
    listed = (await client.get(URL, headers=owner.headers)).json()["data"]
    assert [key["id"] for key in listed] == ids[::-1]


async def test_revoking_a_revoked_key_is_not_found(client: httpx.AsyncClient, accounts: Accounts) -> None:
    owner = await accounts.create()
    created = await create_key(client, owner.headers)
    assert (await client.delete(f"{URL}/{created['id']}", headers=owner.headers)).status_code == 204
    response = await client.delete(f"{URL}/{created['id']}", headers=owner.headers)
    assert response.status_code == 404
    assert single_error(response)["code"] == "NOT_FOUND"


async def test_expired_key_is_refused(client: httpx.AsyncClient, accounts: Accounts, app: FastAPI) -> None:
    owner = await accounts.create()
    created = await create_key(client, owner.headers)
    async with resources_of(app).db.sessionmaker() as session:
        await session.execute(
            update(ApiKey)
            .where(ApiKey.id == uuid.UUID(created["id"]))
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        await session.commit()
    response = await client.get(ME, headers=key_headers(created["secret"]))
    assert response.status_code == 401
    assert single_error(response)["code"] == "INVALID_TOKEN"


async def test_deactivated_owners_key_is_refused(
    client: httpx.AsyncClient, accounts: Accounts, app: FastAPI
) -> None:
    owner = await accounts.create()
    secret = (await create_key(client, owner.headers))["secret"]
    assert (await client.get(ME, headers=key_headers(secret))).status_code == 200
    resources = resources_of(app)
    async with resources.db.sessionmaker() as session:
        await session.execute(update(User).where(User.id == owner.id).values(is_active=False))
        await session.commit()
    resources.security.api_keys.evict(sha256_hex(secret))  # what the 1 s cache expiry does
    response = await client.get(ME, headers=key_headers(secret))
    assert response.status_code == 401
    assert single_error(response)["code"] == "INVALID_TOKEN"


# --- Strangers and anonymous callers --------------------------------------------------


async def stranger_and_victim_key(
    client: httpx.AsyncClient, accounts: Accounts
) -> tuple[TestUser, dict[str, Any]]:
    victim = await accounts.create()
    stranger = await accounts.create()
    return stranger, await create_key(client, victim.headers)


async def test_another_users_key_is_not_found_on_get(client: httpx.AsyncClient, accounts: Accounts) -> None:
    stranger, key = await stranger_and_victim_key(client, accounts)
    response = await client.get(f"{URL}/{key['id']}", headers=stranger.headers)
    assert response.status_code == 404
    assert single_error(response)["code"] == "NOT_FOUND"
    assert (await client.get(URL, headers=stranger.headers)).json()["data"] == []


async def test_another_users_key_is_not_found_on_delete_and_keeps_working(
    client: httpx.AsyncClient, accounts: Accounts
) -> None:
    stranger, key = await stranger_and_victim_key(client, accounts)
    response = await client.delete(f"{URL}/{key['id']}", headers=stranger.headers)
    assert response.status_code == 404
    assert (await client.get(ME, headers=key_headers(key["secret"]))).status_code == 200


async def test_unknown_key_id_is_not_found(client: httpx.AsyncClient, accounts: Accounts) -> None:
    owner = await accounts.create()
    assert (await client.get(f"{URL}/{uuid.uuid4()}", headers=owner.headers)).status_code == 404
    assert (await client.delete(f"{URL}/{uuid.uuid4()}", headers=owner.headers)).status_code == 404


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", URL), ("GET", URL), ("GET", f"{URL}/{uuid.uuid4()}"), ("DELETE", f"{URL}/{uuid.uuid4()}")],
    ids=["create", "list", "get", "revoke"],
)
async def test_anonymous_caller_is_refused(client: httpx.AsyncClient, method: str, path: str) -> None:
    body = {"name": "k", "scopes": ["profile:read"]} if method == "POST" else None
    response = await client.request(method, path, json=body)
    assert response.status_code == 401
    assert single_error(response)["code"] == "AUTHENTICATION_REQUIRED"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


# --- Audit ----------------------------------------------------------------------------


async def test_create_and_revoke_are_audited(
    client: httpx.AsyncClient, accounts: Accounts, app: FastAPI
) -> None:
    owner = await accounts.create()
    created = await create_key(client, owner.headers, ["profile:read"])
    revoked = await client.delete(f"{URL}/{created['id']}", headers=owner.headers)
    async with resources_of(app).db.sessionmaker() as session:
        rows = (
            (
                await session.execute(
                    select(AuditLog).where(
                        AuditLog.resource_type == "api_key", AuditLog.resource_id == created["id"]
                    )
                )
            )
            .scalars()
            .all()
        )
    by_action = {row.action: row for row in rows}
    assert set(by_action) == {"api_key.created", "api_key.revoked"}
    for row in rows:
        assert row.user_id == owner.id
        assert row.actor_type == "user"
        assert row.outcome == "success"
        assert created["secret"] not in str(row.detail)
    assert by_action["api_key.created"].detail["scopes"] == ["profile:read"]
    assert by_action["api_key.revoked"].request_id == revoked.headers["X-Request-ID"]


async def test_refused_creation_leaves_no_key_and_no_audit_row(
    client: httpx.AsyncClient, accounts: Accounts, app: FastAPI
) -> None:
    owner = await accounts.create()
    response = await client.post(URL, json={"name": "k", "scopes": ["users:admin"]}, headers=owner.headers)
    assert response.status_code == 422
    async with resources_of(app).db.sessionmaker() as session:
        keys = (await session.execute(select(ApiKey.id).where(ApiKey.user_id == owner.id))).all()
        audits = (
            await session.execute(
                select(AuditLog.id).where(AuditLog.user_id == owner.id, AuditLog.action.like("api_key.%"))
            )
        ).all()
    assert keys == []
    assert audits == []


async def test_list_is_paginated(client: httpx.AsyncClient, accounts: Accounts) -> None:
    owner = await accounts.create()
    ids = [(await create_key(client, owner.headers, name=f"k{n}"))["id"] for n in range(3)]
    response = await client.get(URL, params={"per_page": 2, "page": 2}, headers=owner.headers)
    assert response.status_code == 200
    body = response.json()
    assert [key["id"] for key in body["data"]] == [ids[0]]
    assert body["meta"]["pagination"] == {
        "total": 3,
        "page": 2,
        "per_page": 2,
        "pages": 2,
        "has_next": False,
        "has_prev": True,
    }
    assert 'rel="prev"' in response.headers["Link"]


async def test_list_refuses_an_out_of_range_page_size(client: httpx.AsyncClient, accounts: Accounts) -> None:
    owner = await accounts.create()
    response = await client.get(URL, params={"per_page": 101}, headers=owner.headers)
    assert response.status_code == 422
    assert single_error(response)["field"] == "per_page"
