"""Products over HTTP, on both backends: the contract of one resource (create, read,
replace, change, soft delete, restore), its validation bounds, ETags and preconditions."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from keel.products.models import Product
from keel.users.models import Role
from tests.catalog import PRODUCTS, create_folder, create_product, product_url, single_error
from tests.identity import Accounts, TestUser


@pytest.fixture(scope="module")
async def owner(accounts: Accounts) -> TestUser:
    return await accounts.create()


@pytest.fixture(scope="module")
async def admin(accounts: Accounts) -> TestUser:
    return await accounts.create(role=Role.ADMIN)


async def read(client: httpx.AsyncClient, user: TestUser, product_id: str) -> dict[str, Any]:
    response = await client.get(product_url(product_id), headers=user.headers)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


# --- Create --------------------------------------------------------------------------------


async def test_create_returns_201_with_location_etag_and_self_link(
    client: httpx.AsyncClient, owner: TestUser
) -> None:
    body = {
        "name": "  Teapot  ",
        "description": "Cast iron.",
        "price": "24.5",
        "currency": "EUR",
        "stock": 3,
        "category": "kitchen",
        "tags": ["tea", "iron", "tea"],
    }
    response = await client.post(PRODUCTS, json=body, headers=owner.headers)
    assert response.status_code == 201
    data = response.json()["data"]
    assert response.headers["Location"] == product_url(data["id"])
    assert response.headers["ETag"] == f'"{data["id"].replace("-", "")}-1"'
    assert {"href": product_url(data["id"]), "rel": "self", "method": "GET"} in response.json()["links"]
    assert data["name"] == "Teapot"
    assert data["price"] == "24.50"
    assert data["tags"] == ["tea", "iron"]
    assert data["owner_id"] == str(owner.id)
    assert data["version"] == 1
    assert data["folder_id"] is None
    assert await read(client, owner, data["id"]) == data


async def test_price_is_exact_and_serialised_as_a_string(client: httpx.AsyncClient, owner: TestUser) -> None:
    created = await create_product(client, owner, price=0.1)
    assert created["price"] == "0.10"
    created = await create_product(client, owner, price="9999999999.99")
    assert created["price"] == "9999999999.99"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", ""),
        ("name", "   "),
        ("name", "x" * 101),
        ("name", "tab\there"),
        ("description", "d" * 2001),
        ("description", "nul\x00byte"),
        ("price", "-0.01"),
        ("price", "1.001"),
        ("price", "10000000000.00"),
        ("price", "NaN"),
        ("price", "Infinity"),
        ("currency", "eur"),
        ("currency", "EURO"),
        ("currency", "XYZ"),
        ("stock", -1),
        ("stock", 2_147_483_648),
        ("category", ""),
        ("category", "c" * 51),
        ("tags", [f"t{i}" for i in range(11)]),
        ("tags", [""]),
        ("tags", ["x" * 51]),
        ("folder_id", "not-a-uuid"),
    ],
)
async def test_every_bound_is_enforced_with_a_field_error(
    client: httpx.AsyncClient, owner: TestUser, field: str, value: Any
) -> None:
    body = {"name": "Bounded", "price": "1.00", "currency": "EUR", field: value}
    response = await client.post(PRODUCTS, json=body, headers=owner.headers)
    assert response.status_code == 422, response.text
    fields = [item["field"] for item in response.json()["errors"]]
    assert all(item["code"] == "VALIDATION_ERROR" for item in response.json()["errors"])
    assert any(f == field or f.startswith(f"{field}.") for f in fields), fields


async def test_bounds_at_the_limit_are_accepted(client: httpx.AsyncClient, owner: TestUser) -> None:
    created = await create_product(
        client,
        owner,
        name="n" * 100,
        description="d" * 2000,
        price="0",
        stock=2_147_483_647,
        category="c" * 50,
        tags=[f"{i}" * 50 for i in range(10)],
    )
    assert created["price"] == "0.00"
    assert len(created["tags"]) == 10


async def test_unknown_and_missing_fields_are_each_reported(
    client: httpx.AsyncClient, owner: TestUser
) -> None:
    response = await client.post(PRODUCTS, json={"name": "x", "colour": "red"}, headers=owner.headers)
    assert response.status_code == 422
    fields = {item["field"] for item in response.json()["errors"]}
    assert {"colour", "price", "currency"} <= fields


async def test_an_oversized_body_is_refused_with_413(client: httpx.AsyncClient, owner: TestUser) -> None:
    body = {"name": "big", "price": "1", "currency": "EUR", "description": "x" * 2_000_000}
    response = await client.post(PRODUCTS, json=body, headers=owner.headers)
    assert response.status_code == 413
    assert single_error(response)["code"] == "PAYLOAD_TOO_LARGE"


async def test_anonymous_gets_401_on_every_product_endpoint(
    client: httpx.AsyncClient, owner: TestUser
) -> None:
    product = await create_product(client, owner)
    url = product_url(product["id"])
    calls = [
        ("GET", PRODUCTS),
        ("POST", PRODUCTS),
        ("GET", f"{PRODUCTS}/export"),
        ("GET", url),
        ("PUT", url),
        ("PATCH", url),
        ("DELETE", url),
        ("POST", f"{url}/restore"),
        ("GET", f"{url}/permissions"),
        ("POST", f"{url}/permissions"),
        ("DELETE", f"{url}/permissions/{owner.id}"),
    ]
    for method, path in calls:
        response = await client.request(method, path, json={} if method in ("POST", "PUT", "PATCH") else None)
        assert response.status_code == 401, (method, path, response.text)
        assert single_error(response)["code"] == "AUTHENTICATION_REQUIRED"


async def test_a_tampered_token_is_refused(client: httpx.AsyncClient, owner: TestUser) -> None:
    header, payload, signature = owner.access_token.split(".")
    tampered = f"{header}.{payload}.{signature[:-4]}AAAA"
    response = await client.get(PRODUCTS, headers={"Authorization": f"Bearer {tampered}"})
    assert response.status_code == 401
    assert single_error(response)["code"] == "INVALID_TOKEN"


# --- Read, ETag ----------------------------------------------------------------------------


async def test_if_none_match_with_the_current_etag_is_304_without_a_body(
    client: httpx.AsyncClient, owner: TestUser
) -> None:
    product = await create_product(client, owner)
    first = await client.get(product_url(product["id"]), headers=owner.headers)
    etag = first.headers["ETag"]
    assert first.headers["Cache-Control"] == "private, no-cache"
    again = await client.get(product_url(product["id"]), headers={**owner.headers, "If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["ETag"] == etag
    stale = await client.get(
        product_url(product["id"]), headers={**owner.headers, "If-None-Match": '"other"'}
    )
    assert stale.status_code == 200


async def test_the_etag_changes_with_every_write(client: httpx.AsyncClient, owner: TestUser) -> None:
    product = await create_product(client, owner)
    before = (await client.get(product_url(product["id"]), headers=owner.headers)).headers["ETag"]
    patched = await client.patch(product_url(product["id"]), json={"stock": 5}, headers=owner.headers)
    assert patched.status_code == 200
    assert patched.headers["ETag"] != before
    after = await client.get(product_url(product["id"]), headers={**owner.headers, "If-None-Match": before})
    assert after.status_code == 200
    assert after.json()["data"]["version"] == 2


async def test_an_unknown_id_is_404(client: httpx.AsyncClient, owner: TestUser) -> None:
    response = await client.get(product_url("01900000-0000-7000-8000-000000000000"), headers=owner.headers)
    assert response.status_code == 404
    assert single_error(response)["code"] == "NOT_FOUND"


# --- Replace and change ----------------------------------------------------------------------


async def test_put_replaces_every_field_and_resets_omitted_ones(
    client: httpx.AsyncClient, owner: TestUser
) -> None:
    product = await create_product(client, owner, description="old", category="c", tags=["a"], stock=4)
    body = {"name": "Replaced", "price": "3.00", "currency": "USD"}
    response = await client.put(product_url(product["id"]), json=body, headers=owner.headers)
    assert response.status_code == 200
    data = await read(client, owner, product["id"])
    assert (data["name"], data["price"], data["currency"]) == ("Replaced", "3.00", "USD")
    assert (data["description"], data["category"], data["tags"], data["stock"]) == (None, None, [], 0)
    assert data["version"] == 2


async def test_patch_changes_only_what_is_sent(client: httpx.AsyncClient, owner: TestUser) -> None:
    product = await create_product(client, owner, description="keep", category="c", tags=["a"], stock=4)
    response = await client.patch(product_url(product["id"]), json={"price": "7.25"}, headers=owner.headers)
    assert response.status_code == 200
    data = await read(client, owner, product["id"])
    assert data["price"] == "7.25"
    assert (data["description"], data["category"], data["tags"], data["stock"]) == ("keep", "c", ["a"], 4)


async def test_patch_null_clears_optional_fields_and_refuses_required_ones(
    client: httpx.AsyncClient, owner: TestUser
) -> None:
    product = await create_product(client, owner, description="text", category="c")
    cleared = await client.patch(
        product_url(product["id"]), json={"description": None, "category": None}, headers=owner.headers
    )
    assert cleared.status_code == 200
    assert (cleared.json()["data"]["description"], cleared.json()["data"]["category"]) == (None, None)
    refused = await client.patch(product_url(product["id"]), json={"name": None}, headers=owner.headers)
    assert refused.status_code == 422
    assert single_error(refused)["field"] == "name"


async def test_failed_validation_changes_nothing(client: httpx.AsyncClient, owner: TestUser) -> None:
    product = await create_product(client, owner, stock=2)
    url = product_url(product["id"])
    assert (await client.patch(url, json={"stock": -5}, headers=owner.headers)).status_code == 422
    assert (await client.put(url, json={"name": "no price"}, headers=owner.headers)).status_code == 422
    data = await read(client, owner, product["id"])
    assert data == product


async def test_patch_into_a_folder_needs_access_to_it(
    client: httpx.AsyncClient, owner: TestUser, accounts: Accounts
) -> None:
    other = await accounts.create()
    theirs = await create_folder(client, other)
    mine = await create_folder(client, owner)
    product = await create_product(client, owner)
    hidden = await client.patch(
        product_url(product["id"]), json={"folder_id": theirs["id"]}, headers=owner.headers
    )
    assert hidden.status_code == 404
    assert single_error(hidden)["field"] == "folder_id"
    moved = await client.patch(
        product_url(product["id"]), json={"folder_id": mine["id"]}, headers=owner.headers
    )
    assert moved.status_code == 200
    assert (await read(client, owner, product["id"]))["folder_id"] == mine["id"]


# --- Preconditions ---------------------------------------------------------------------------


async def test_if_match_with_a_stale_etag_is_412_and_changes_nothing(
    client: httpx.AsyncClient, owner: TestUser
) -> None:
    product = await create_product(client, owner)
    url = product_url(product["id"])
    etag = (await client.get(url, headers=owner.headers)).headers["ETag"]
    first = await client.patch(url, json={"name": "first"}, headers={**owner.headers, "If-Match": etag})
    assert first.status_code == 200
    second = await client.patch(url, json={"name": "second"}, headers={**owner.headers, "If-Match": etag})
    assert second.status_code == 412
    assert single_error(second)["code"] == "PRECONDITION_FAILED"
    stale_delete = await client.delete(url, headers={**owner.headers, "If-Match": etag})
    assert stale_delete.status_code == 412
    data = await read(client, owner, product["id"])
    assert (data["name"], data["version"]) == ("first", 2)


async def test_if_match_star_and_weak_tags(client: httpx.AsyncClient, owner: TestUser) -> None:
    product = await create_product(client, owner)
    url = product_url(product["id"])
    etag = (await client.get(url, headers=owner.headers)).headers["ETag"]
    weak = await client.patch(url, json={"stock": 1}, headers={**owner.headers, "If-Match": f"W/{etag}"})
    assert weak.status_code == 412  # If-Match uses the strong comparison
    star = await client.patch(url, json={"stock": 1}, headers={**owner.headers, "If-Match": "*"})
    assert star.status_code == 200
    listed = await client.patch(
        url, json={"stock": 2}, headers={**owner.headers, "If-Match": f'"x", {star.headers["ETag"]}'}
    )
    assert listed.status_code == 200


async def test_two_concurrent_writers_with_the_same_etag_one_wins_one_gets_412(
    client: httpx.AsyncClient, owner: TestUser
) -> None:
    product = await create_product(client, owner)
    url = product_url(product["id"])
    etag = (await client.get(url, headers=owner.headers)).headers["ETag"]
    responses = await asyncio.gather(
        *(
            client.patch(url, json={"name": f"writer {i}"}, headers={**owner.headers, "If-Match": etag})
            for i in range(2)
        )
    )
    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200, 412]
    winner = next(response for response in responses if response.status_code == 200)
    data = await read(client, owner, product["id"])
    assert data["name"] == winner.json()["data"]["name"]
    assert data["version"] == 2


# --- Delete and restore ----------------------------------------------------------------------


async def test_delete_is_soft_then_404_and_gone_from_lists(
    client: httpx.AsyncClient, owner: TestUser, app: Any
) -> None:
    product = await create_product(client, owner, name="Ephemeral", tags=["soft-delete-probe"])
    url = product_url(product["id"])
    deleted = await client.delete(url, headers=owner.headers)
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert (await client.get(url, headers=owner.headers)).status_code == 404
    listed = await client.get(PRODUCTS, params={"tag": "soft-delete-probe"}, headers=owner.headers)
    assert listed.json()["data"] == []
    assert (await client.delete(url, headers=owner.headers)).status_code == 404
    async with app.state.resources.db.sessionmaker() as session:
        row = (
            await session.execute(select(Product.deleted_at).where(Product.id == uuid.UUID(product["id"])))
        ).one()
    assert row.deleted_at is not None


async def test_restore_is_for_admins_and_brings_the_product_back(
    client: httpx.AsyncClient, owner: TestUser, admin: TestUser
) -> None:
    product = await create_product(client, owner)
    url = product_url(product["id"])
    assert (await client.delete(url, headers=owner.headers)).status_code == 204
    refused = await client.post(f"{url}/restore", headers=owner.headers)
    assert refused.status_code == 403
    restored = await client.post(f"{url}/restore", headers=admin.headers)
    assert restored.status_code == 200
    assert restored.json()["data"]["version"] == 3
    assert (await read(client, owner, product["id"]))["name"] == product["name"]
    again = await client.post(f"{url}/restore", headers=admin.headers)
    assert again.status_code == 404


# --- Idempotency ---------------------------------------------------------------------------


async def test_eight_concurrent_identical_posts_create_exactly_one_product(
    client: httpx.AsyncClient, accounts: Accounts
) -> None:
    user = await accounts.create()
    body = {"name": "Once", "price": "1.00", "currency": "EUR", "tags": ["idempotent"]}
    headers = {**user.headers, "Idempotency-Key": "create-once-1"}
    responses = await asyncio.gather(*(client.post(PRODUCTS, json=body, headers=headers) for _ in range(8)))
    assert {response.status_code for response in responses} <= {201, 409}
    created = [response for response in responses if response.status_code == 201]
    assert len({response.json()["data"]["id"] for response in created}) == 1
    listed = await client.get(PRODUCTS, params={"tag": "idempotent"}, headers=user.headers)
    assert listed.json()["meta"]["pagination"]["total"] == 1
    replay = await client.post(PRODUCTS, json=body, headers=headers)
    assert replay.status_code == 201
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json()["data"]["id"] == created[0].json()["data"]["id"]
    assert replay.headers["Location"] == created[0].headers["Location"]


async def test_the_same_key_with_another_body_is_refused(client: httpx.AsyncClient, owner: TestUser) -> None:
    headers = {**owner.headers, "Idempotency-Key": "reused-key"}
    first = await client.post(PRODUCTS, json={"name": "A", "price": "1", "currency": "EUR"}, headers=headers)
    assert first.status_code == 201
    second = await client.post(PRODUCTS, json={"name": "B", "price": "1", "currency": "EUR"}, headers=headers)
    assert second.status_code == 422
    assert single_error(second)["code"] == "IDEMPOTENCY_KEY_REUSED"
