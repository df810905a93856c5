"""Folders over HTTP, on both backends: CRUD with ETags and preconditions, the ten-level
depth limit, moves (cycles refused, depths and grant coverage following the subtree),
deletes (empty, refused when not empty, recursive), a folder's products, validation, and
anonymous and stranger callers. Refused requests are shown to change nothing."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from typing import Any

import httpx
import pytest

from keel.users.models import Role
from tests.catalog import (
    FOLDERS,
    PRODUCTS,
    create_folder,
    create_product,
    folder_url,
    listed_ids,
    product_url,
    share,
    single_error,
)
from tests.identity import Accounts, TestUser

MAX_DEPTH = 10


@pytest.fixture(scope="module")
async def owner(accounts: Accounts) -> TestUser:
    return await accounts.create()


@pytest.fixture(scope="module")
async def stranger(accounts: Accounts) -> TestUser:
    return await accounts.create()


@pytest.fixture(scope="module")
async def grantee(accounts: Accounts) -> TestUser:
    return await accounts.create()


@pytest.fixture(scope="module")
async def admin(accounts: Accounts) -> TestUser:
    return await accounts.create(role=Role.ADMIN)


@pytest.fixture
async def folder(client: httpx.AsyncClient, owner: TestUser) -> dict[str, Any]:
    return await create_folder(client, owner, name="Kitchen", description="Pots and pans")


async def fetch(client: httpx.AsyncClient, user: TestUser, folder_id: str) -> dict[str, Any]:
    response = await client.get(folder_url(folder_id), headers=user.headers)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


async def status_of(client: httpx.AsyncClient, user: TestUser, url: str) -> int:
    return (await client.get(url, headers=user.headers)).status_code


async def folder_total(client: httpx.AsyncClient, user: TestUser) -> int:
    response = await client.get(FOLDERS, headers=user.headers)
    assert response.status_code == 200, response.text
    total: int = response.json()["meta"]["pagination"]["total"]
    return total


async def chain(client: httpx.AsyncClient, user: TestUser, length: int) -> list[dict[str, Any]]:
    """``length`` folders, each inside the one before."""
    folders = [await create_folder(client, user, name="Level 1")]
    for level in range(2, length + 1):
        folders.append(await create_folder(client, user, name=f"Level {level}", parent_id=folders[-1]["id"]))
    return folders


def assert_error(response: httpx.Response, status: int, code: str, field: str | None = None) -> None:
    assert response.status_code == status, response.text
    error = single_error(response)
    assert (error["code"], error["field"]) == (code, field)


# --- Create and read ------------------------------------------------------------------


async def test_create_is_201_with_location_etag_and_the_folder(
    client: httpx.AsyncClient, owner: TestUser
) -> None:
    response = await client.post(
        FOLDERS, json={"name": "  Pantry  ", "description": "Dry goods"}, headers=owner.headers
    )
    assert response.status_code == 201, response.text
    data = response.json()["data"]
    assert response.headers["Location"] == folder_url(data["id"])
    assert response.headers["ETag"] == f'"{uuid.UUID(data["id"]).hex}-1"'
    assert data | {"id": "", "created_at": "", "updated_at": ""} == {
        "id": "",
        "name": "Pantry",
        "description": "Dry goods",
        "parent_id": None,
        "owner_id": str(owner.id),
        "depth": 1,
        "version": 1,
        "created_at": "",
        "updated_at": "",
    }
    assert await fetch(client, owner, data["id"]) == data


async def test_create_inside_a_parent_sets_parent_and_depth(
    client: httpx.AsyncClient, owner: TestUser, folder: dict[str, Any]
) -> None:
    child = await create_folder(client, owner, parent_id=folder["id"])
    assert (child["parent_id"], child["depth"]) == (folder["id"], 2)
    assert await listed_ids(client, owner, FOLDERS, parent_id=folder["id"]) == {child["id"]}


async def test_get_returns_strong_etag_private_cache_and_products_link(
    client: httpx.AsyncClient, owner: TestUser, folder: dict[str, Any]
) -> None:
    response = await client.get(folder_url(folder["id"]), headers=owner.headers)
    assert response.status_code == 200
    assert response.json()["data"] == folder
    assert response.headers["ETag"] == f'"{uuid.UUID(folder["id"]).hex}-1"'
    assert response.headers["Cache-Control"] == "private, no-cache"
    links = {link["rel"]: link["href"] for link in response.json()["links"]}
    assert links == {"self": folder_url(folder["id"]), "products": f"{folder_url(folder['id'])}/products"}


async def test_get_with_the_current_etag_in_if_none_match_is_304_without_body(
    client: httpx.AsyncClient, owner: TestUser, folder: dict[str, Any]
) -> None:
    url = folder_url(folder["id"])
    etag = (await client.get(url, headers=owner.headers)).headers["ETag"]
    response = await client.get(url, headers={**owner.headers, "If-None-Match": etag})
    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["ETag"] == etag


async def test_get_with_an_old_etag_in_if_none_match_is_200_with_the_new_one(
    client: httpx.AsyncClient, owner: TestUser, folder: dict[str, Any]
) -> None:
    url = folder_url(folder["id"])
    old = (await client.get(url, headers=owner.headers)).headers["ETag"]
    assert (await client.patch(url, json={"name": "Renamed"}, headers=owner.headers)).status_code == 200
    response = await client.get(url, headers={**owner.headers, "If-None-Match": old})
    assert response.status_code == 200
    assert response.json()["data"]["name"] == "Renamed"
    assert response.headers["ETag"] not in (old, None)


async def test_list_shows_own_folders_with_a_weak_etag_and_honours_if_none_match(
    client: httpx.AsyncClient, owner: TestUser, stranger: TestUser
) -> None:
    name = secrets.token_hex(5)
    mine = await create_folder(client, owner, name=f"Mine {name}")
    await create_folder(client, stranger, name=f"Theirs {name}")
    response = await client.get(FOLDERS, params={"q": name}, headers=owner.headers)
    assert response.status_code == 200
    assert [item["id"] for item in response.json()["data"]] == [mine["id"]]
    etag = response.headers["ETag"]
    assert etag.startswith('W/"')
    again = await client.get(FOLDERS, params={"q": name}, headers={**owner.headers, "If-None-Match": etag})
    assert again.status_code == 304


# --- Replace and change ---------------------------------------------------------------


async def test_put_replaces_every_field_and_bumps_the_version(
    client: httpx.AsyncClient, owner: TestUser, folder: dict[str, Any]
) -> None:
    url = folder_url(folder["id"])
    response = await client.put(url, json={"name": "Scullery"}, headers=owner.headers)
    assert response.status_code == 200, response.text
    after = await fetch(client, owner, folder["id"])
    assert after == response.json()["data"]
    assert (after["name"], after["description"], after["version"]) == ("Scullery", None, 2)
    assert response.headers["ETag"] == f'"{uuid.UUID(folder["id"]).hex}-2"'


async def test_patch_changes_only_the_fields_sent(
    client: httpx.AsyncClient, owner: TestUser, folder: dict[str, Any]
) -> None:
    response = await client.patch(folder_url(folder["id"]), json={"name": "Larder"}, headers=owner.headers)
    assert response.status_code == 200, response.text
    after = await fetch(client, owner, folder["id"])
    assert (after["name"], after["description"], after["version"]) == ("Larder", "Pots and pans", 2)


async def test_patch_description_null_clears_it(
    client: httpx.AsyncClient, owner: TestUser, folder: dict[str, Any]
) -> None:
    response = await client.patch(folder_url(folder["id"]), json={"description": None}, headers=owner.headers)
    assert response.status_code == 200
    assert (await fetch(client, owner, folder["id"]))["description"] is None


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
async def test_write_with_the_current_etag_in_if_match_succeeds(
    client: httpx.AsyncClient, owner: TestUser, folder: dict[str, Any], method: str
) -> None:
    url = folder_url(folder["id"])
    etag = (await client.get(url, headers=owner.headers)).headers["ETag"]
    response = await client.request(
        method, url, json={"name": "Matched"}, headers={**owner.headers, "If-Match": etag}
    )
    assert response.status_code == 200, response.text
    assert (await fetch(client, owner, folder["id"]))["name"] == "Matched"


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
async def test_write_with_if_match_star_succeeds(
    client: httpx.AsyncClient, owner: TestUser, folder: dict[str, Any], method: str
) -> None:
    url = folder_url(folder["id"])
    response = await client.request(
        method, url, json={"name": "Any"}, headers={**owner.headers, "If-Match": "*"}
    )
    assert response.status_code == 200, response.text
    assert (await fetch(client, owner, folder["id"]))["name"] == "Any"


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
async def test_write_with_a_stale_etag_is_412_and_changes_nothing(
    client: httpx.AsyncClient, owner: TestUser, folder: dict[str, Any], method: str
) -> None:
    url = folder_url(folder["id"])
    stale = (await client.get(url, headers=owner.headers)).headers["ETag"]
    assert (await client.patch(url, json={"name": "First"}, headers=owner.headers)).status_code == 200
    current = await fetch(client, owner, folder["id"])

    response = await client.request(
        method, url, json={"name": "Lost update"}, headers={**owner.headers, "If-Match": stale}
    )

    assert_error(response, 412, "PRECONDITION_FAILED", "If-Match")
    assert await fetch(client, owner, folder["id"]) == current


async def test_delete_with_a_stale_etag_is_412_and_keeps_the_folder(
    client: httpx.AsyncClient, owner: TestUser, folder: dict[str, Any]
) -> None:
    url = folder_url(folder["id"])
    stale = (await client.get(url, headers=owner.headers)).headers["ETag"]
    assert (await client.patch(url, json={"name": "Moved on"}, headers=owner.headers)).status_code == 200
    current = await fetch(client, owner, folder["id"])

    response = await client.delete(url, headers={**owner.headers, "If-Match": stale})

    assert_error(response, 412, "PRECONDITION_FAILED", "If-Match")
    assert await fetch(client, owner, folder["id"]) == current


async def test_delete_with_the_current_etag_succeeds(
    client: httpx.AsyncClient, owner: TestUser, folder: dict[str, Any]
) -> None:
    url = folder_url(folder["id"])
    etag = (await client.get(url, headers=owner.headers)).headers["ETag"]
    assert (await client.delete(url, headers={**owner.headers, "If-Match": etag})).status_code == 204
    assert await status_of(client, owner, url) == 404


# --- Depth ----------------------------------------------------------------------------


async def test_ten_levels_nest_and_an_eleventh_is_conflict(
    client: httpx.AsyncClient, owner: TestUser
) -> None:
    folders = await chain(client, owner, MAX_DEPTH)
    assert [folder["depth"] for folder in folders] == list(range(1, MAX_DEPTH + 1))

    response = await client.post(
        FOLDERS, json={"name": "Level 11", "parent_id": folders[-1]["id"]}, headers=owner.headers
    )

    assert_error(response, 409, "CONFLICT", "parent_id")
    assert await listed_ids(client, owner, FOLDERS, parent_id=folders[-1]["id"]) == set()


async def test_moving_a_subtree_to_exactly_ten_levels_is_allowed(
    client: httpx.AsyncClient, owner: TestUser
) -> None:
    deep, subtree = await chain(client, owner, 5), await chain(client, owner, 5)
    response = await client.patch(
        folder_url(subtree[0]["id"]), json={"parent_id": deep[-1]["id"]}, headers=owner.headers
    )
    assert response.status_code == 200, response.text
    depths = [(await fetch(client, owner, folder["id"]))["depth"] for folder in subtree]
    assert depths == list(range(6, MAX_DEPTH + 1))


async def test_moving_a_subtree_beyond_ten_levels_is_conflict_and_changes_nothing(
    client: httpx.AsyncClient, owner: TestUser
) -> None:
    deep, subtree = await chain(client, owner, 6), await chain(client, owner, 5)

    response = await client.patch(
        folder_url(subtree[0]["id"]), json={"parent_id": deep[-1]["id"]}, headers=owner.headers
    )

    assert_error(response, 409, "CONFLICT", "parent_id")
    assert [await fetch(client, owner, folder["id"]) for folder in subtree] == subtree
    assert await listed_ids(client, owner, FOLDERS, parent_id=deep[-1]["id"]) == set()


# --- Moves ----------------------------------------------------------------------------


async def test_moving_a_folder_into_itself_is_conflict_and_changes_nothing(
    client: httpx.AsyncClient, owner: TestUser, folder: dict[str, Any]
) -> None:
    response = await client.patch(
        folder_url(folder["id"]), json={"parent_id": folder["id"]}, headers=owner.headers
    )
    assert_error(response, 409, "CONFLICT", "parent_id")
    assert await fetch(client, owner, folder["id"]) == folder


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
async def test_moving_a_folder_into_its_descendant_is_conflict_and_changes_nothing(
    client: httpx.AsyncClient, owner: TestUser, method: str
) -> None:
    folders = await chain(client, owner, 3)
    response = await client.request(
        method,
        folder_url(folders[0]["id"]),
        json={"name": "Loop", "parent_id": folders[2]["id"]},
        headers=owner.headers,
    )
    assert_error(response, 409, "CONFLICT", "parent_id")
    assert [await fetch(client, owner, folder["id"]) for folder in folders] == folders


async def test_a_move_shifts_the_depth_of_the_folder_and_every_descendant(
    client: httpx.AsyncClient, owner: TestUser
) -> None:
    target = await chain(client, owner, 2)
    subtree = await chain(client, owner, 3)
    top = subtree[0]["id"]

    moved = await client.patch(folder_url(top), json={"parent_id": target[-1]["id"]}, headers=owner.headers)

    assert moved.status_code == 200, moved.text
    assert (moved.json()["data"]["parent_id"], moved.json()["data"]["depth"]) == (target[-1]["id"], 3)
    assert [(await fetch(client, owner, f["id"]))["depth"] for f in subtree] == [3, 4, 5]
    # And back to the top level.
    back = await client.patch(folder_url(top), json={"parent_id": None}, headers=owner.headers)
    assert back.status_code == 200
    assert [(await fetch(client, owner, f["id"]))["depth"] for f in subtree] == [1, 2, 3]


async def test_after_a_move_the_new_parents_grants_cover_the_subtree_and_the_old_ones_do_not(
    client: httpx.AsyncClient, accounts: Accounts, owner: TestUser
) -> None:
    old_viewer, new_viewer = await accounts.create(), await accounts.create()
    old_parent, new_parent = await create_folder(client, owner), await create_folder(client, owner)
    await share(client, owner, folder_url(old_parent["id"]), old_viewer, "viewer")
    await share(client, owner, folder_url(new_parent["id"]), new_viewer, "viewer")
    moving = await create_folder(client, owner, parent_id=old_parent["id"])
    inner = await create_folder(client, owner, parent_id=moving["id"])
    product = await create_product(client, owner, folder_id=inner["id"])
    urls = [folder_url(moving["id"]), folder_url(inner["id"]), product_url(product["id"])]
    assert [await status_of(client, old_viewer, url) for url in urls] == [200, 200, 200]
    assert [await status_of(client, new_viewer, url) for url in urls] == [404, 404, 404]

    response = await client.patch(urls[0], json={"parent_id": new_parent["id"]}, headers=owner.headers)

    assert response.status_code == 200, response.text
    assert [await status_of(client, new_viewer, url) for url in urls] == [200, 200, 200]
    assert [await status_of(client, old_viewer, url) for url in urls] == [404, 404, 404]
    assert await listed_ids(client, new_viewer, PRODUCTS) == {product["id"]}
    assert await listed_ids(client, old_viewer, PRODUCTS) == set()


async def test_moving_under_a_folder_only_viewed_is_403_and_changes_nothing(
    client: httpx.AsyncClient, owner: TestUser, stranger: TestUser
) -> None:
    theirs = await create_folder(client, stranger)
    await share(client, stranger, folder_url(theirs["id"]), owner, "viewer")
    mine = await create_folder(client, owner)
    response = await client.patch(
        folder_url(mine["id"]), json={"parent_id": theirs["id"]}, headers=owner.headers
    )
    assert_error(response, 403, "FORBIDDEN", "parent_id")
    assert await fetch(client, owner, mine["id"]) == mine


# --- Delete ---------------------------------------------------------------------------


async def test_deleting_an_empty_folder_is_204_and_it_is_gone(
    client: httpx.AsyncClient, owner: TestUser, folder: dict[str, Any]
) -> None:
    url = folder_url(folder["id"])
    assert (await client.delete(url, headers=owner.headers)).status_code == 204
    assert await status_of(client, owner, url) == 404
    assert folder["id"] not in await listed_ids(client, owner, FOLDERS, q="Kitchen")


async def test_deleting_a_folder_with_a_sub_folder_is_conflict_and_deletes_nothing(
    client: httpx.AsyncClient, owner: TestUser, folder: dict[str, Any]
) -> None:
    child = await create_folder(client, owner, parent_id=folder["id"])
    response = await client.delete(folder_url(folder["id"]), headers=owner.headers)
    assert_error(response, 409, "CONFLICT")
    assert await fetch(client, owner, folder["id"]) == folder
    assert await fetch(client, owner, child["id"]) == child


async def test_deleting_a_folder_with_a_product_is_conflict_and_deletes_nothing(
    client: httpx.AsyncClient, owner: TestUser, folder: dict[str, Any]
) -> None:
    product = await create_product(client, owner, folder_id=folder["id"])
    response = await client.delete(folder_url(folder["id"]), headers=owner.headers)
    assert_error(response, 409, "CONFLICT")
    assert await fetch(client, owner, folder["id"]) == folder
    assert (await client.get(product_url(product["id"]), headers=owner.headers)).json()["data"] == product


async def test_recursive_delete_removes_sub_folders_and_the_products_in_all_of_them(
    client: httpx.AsyncClient, owner: TestUser, folder: dict[str, Any]
) -> None:
    child = await create_folder(client, owner, parent_id=folder["id"])
    top_product = await create_product(client, owner, folder_id=folder["id"])
    inner_product = await create_product(client, owner, folder_id=child["id"])
    elsewhere = await create_product(client, owner)

    response = await client.delete(
        folder_url(folder["id"]), params={"recursive": "true"}, headers=owner.headers
    )

    assert response.status_code == 204
    gone = [folder_url(folder["id"]), folder_url(child["id"])]
    gone += [product_url(top_product["id"]), product_url(inner_product["id"])]
    assert [await status_of(client, owner, url) for url in gone] == [404] * 4
    listed = await listed_ids(client, owner, PRODUCTS)
    assert {top_product["id"], inner_product["id"]}.isdisjoint(listed)
    assert elsewhere["id"] in listed


async def test_admin_restores_a_product_of_a_deleted_folder_outside_any_folder(
    client: httpx.AsyncClient, owner: TestUser, admin: TestUser, folder: dict[str, Any]
) -> None:
    product = await create_product(client, owner, folder_id=folder["id"])
    assert (
        await client.delete(folder_url(folder["id"]), params={"recursive": "true"}, headers=owner.headers)
    ).status_code == 204
    restore = f"{product_url(product['id'])}/restore"
    assert (await client.post(restore, headers=owner.headers)).status_code == 403

    response = await client.post(restore, headers=admin.headers)

    assert response.status_code == 200, response.text
    assert response.json()["data"]["folder_id"] is None
    after = await client.get(product_url(product["id"]), headers=owner.headers)
    assert after.status_code == 200
    assert after.json()["data"]["folder_id"] is None


async def test_a_folder_holding_only_deleted_products_is_empty(
    client: httpx.AsyncClient, owner: TestUser, admin: TestUser, folder: dict[str, Any]
) -> None:
    product = await create_product(client, owner, folder_id=folder["id"])
    assert (await client.delete(product_url(product["id"]), headers=owner.headers)).status_code == 204
    assert (await client.delete(folder_url(folder["id"]), headers=owner.headers)).status_code == 204
    restored = await client.post(f"{product_url(product['id'])}/restore", headers=admin.headers)
    assert restored.status_code == 200
    assert restored.json()["data"]["folder_id"] is None


async def test_delete_with_an_invalid_recursive_flag_is_422_and_deletes_nothing(
    client: httpx.AsyncClient, owner: TestUser, folder: dict[str, Any]
) -> None:
    await create_folder(client, owner, parent_id=folder["id"])
    response = await client.delete(
        folder_url(folder["id"]), params={"recursive": "maybe"}, headers=owner.headers
    )
    assert_error(response, 422, "VALIDATION_ERROR", "recursive")
    assert await fetch(client, owner, folder["id"]) == folder


# --- A folder's products --------------------------------------------------------------


async def test_folder_products_lists_only_the_products_directly_inside(
    client: httpx.AsyncClient, owner: TestUser, folder: dict[str, Any]
) -> None:
    child = await create_folder(client, owner, parent_id=folder["id"])
    direct = {(await create_product(client, owner, folder_id=folder["id"]))["id"] for _ in range(2)}
    await create_product(client, owner, folder_id=child["id"])
    await create_product(client, owner)
    assert await listed_ids(client, owner, f"{folder_url(folder['id'])}/products") == direct


async def test_folder_products_are_paginated(
    client: httpx.AsyncClient, owner: TestUser, folder: dict[str, Any]
) -> None:
    ids = {(await create_product(client, owner, folder_id=folder["id"]))["id"] for _ in range(3)}
    url = f"{folder_url(folder['id'])}/products"

    first = await client.get(url, params={"per_page": 2}, headers=owner.headers)
    second = await client.get(url, params={"per_page": 2, "page": 2}, headers=owner.headers)

    assert (first.status_code, second.status_code) == (200, 200)
    assert first.json()["meta"]["pagination"] == {
        "total": 3,
        "page": 1,
        "per_page": 2,
        "pages": 2,
        "has_next": True,
        "has_prev": False,
    }
    assert {link["rel"] for link in first.json()["links"]} == {"first", "next", "last"}
    pages = [[item["id"] for item in page.json()["data"]] for page in (first, second)]
    assert [len(page) for page in pages] == [2, 1]
    assert set(pages[0]) | set(pages[1]) == ids


async def test_folder_products_of_a_strangers_folder_is_404(
    client: httpx.AsyncClient, owner: TestUser, stranger: TestUser, folder: dict[str, Any]
) -> None:
    await create_product(client, owner, name="Secret pan", folder_id=folder["id"])
    response = await client.get(f"{folder_url(folder['id'])}/products", headers=stranger.headers)
    assert_error(response, 404, "NOT_FOUND")
    assert "Secret pan" not in response.text


async def test_folder_products_are_visible_to_a_viewer_of_the_folder(
    client: httpx.AsyncClient, owner: TestUser, grantee: TestUser, folder: dict[str, Any]
) -> None:
    product = await create_product(client, owner, folder_id=folder["id"])
    await share(client, owner, folder_url(folder["id"]), grantee, "viewer")
    assert await listed_ids(client, grantee, f"{folder_url(folder['id'])}/products") == {product["id"]}


# --- Validation -----------------------------------------------------------------------

INVALID_BODIES = [
    pytest.param({"name": ""}, "name", id="name-empty"),
    pytest.param({"name": "   "}, "name", id="name-blank"),
    pytest.param({"name": "x" * 101}, "name", id="name-101"),
    pytest.param({"name": "Tab\there"}, "name", id="name-control-tab"),
    pytest.param({"name": "Nul\x00here"}, "name", id="name-control-nul"),
    pytest.param({"name": "Line\nbreak"}, "name", id="name-control-newline"),
    pytest.param({"description": "x" * 2001}, "description", id="description-2001"),
    pytest.param({"description": "Bell\x07"}, "description", id="description-control"),
    pytest.param({"parent_id": "not-a-uuid"}, "parent_id", id="parent-not-uuid"),
    pytest.param({"colour": "red"}, "colour", id="unknown-field"),
]


@pytest.mark.parametrize(("change", "field"), INVALID_BODIES)
async def test_create_with_an_invalid_body_is_422_on_the_field_and_creates_nothing(
    client: httpx.AsyncClient, owner: TestUser, change: dict[str, Any], field: str
) -> None:
    before = await folder_total(client, owner)
    response = await client.post(FOLDERS, json={"name": "Valid", **change}, headers=owner.headers)
    assert_error(response, 422, "VALIDATION_ERROR", field)
    assert await folder_total(client, owner) == before


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
@pytest.mark.parametrize(("change", "field"), INVALID_BODIES)
async def test_write_with_an_invalid_body_is_422_on_the_field_and_changes_nothing(
    client: httpx.AsyncClient,
    owner: TestUser,
    folder: dict[str, Any],
    *,
    method: str,
    change: dict[str, Any],
    field: str,
) -> None:
    response = await client.request(
        method, folder_url(folder["id"]), json={"name": "Valid", **change}, headers=owner.headers
    )
    assert_error(response, 422, "VALIDATION_ERROR", field)
    assert await fetch(client, owner, folder["id"]) == folder


async def test_put_without_a_name_is_422_and_changes_nothing(
    client: httpx.AsyncClient, owner: TestUser, folder: dict[str, Any]
) -> None:
    response = await client.put(folder_url(folder["id"]), json={"description": "x"}, headers=owner.headers)
    assert_error(response, 422, "VALIDATION_ERROR", "name")
    assert await fetch(client, owner, folder["id"]) == folder


async def test_patch_name_null_is_422_and_changes_nothing(
    client: httpx.AsyncClient, owner: TestUser, folder: dict[str, Any]
) -> None:
    response = await client.patch(folder_url(folder["id"]), json={"name": None}, headers=owner.headers)
    assert_error(response, 422, "VALIDATION_ERROR", "name")
    assert await fetch(client, owner, folder["id"]) == folder


async def test_longest_name_and_description_are_accepted(client: httpx.AsyncClient, owner: TestUser) -> None:
    created = await create_folder(client, owner, name="n" * 100, description="d\n" * 1000)
    assert (len(created["name"]), len(created["description"])) == (100, 2000)


# --- Anonymous and stranger callers ----------------------------------------------------

ENDPOINTS = [
    pytest.param("GET", "", None, id="list"),
    pytest.param("POST", "", {"name": "Anon"}, id="create"),
    pytest.param("GET", "/{id}", None, id="get"),
    pytest.param("PUT", "/{id}", {"name": "Anon"}, id="replace"),
    pytest.param("PATCH", "/{id}", {"name": "Anon"}, id="update"),
    pytest.param("DELETE", "/{id}", None, id="delete"),
    pytest.param("GET", "/{id}/products", None, id="products"),
    pytest.param("GET", "/{id}/permissions", None, id="permissions-list"),
    pytest.param("POST", "/{id}/permissions", {"user_id": "{user}", "level": "owner"}, id="share"),
    pytest.param("DELETE", "/{id}/permissions/{user}", None, id="unshare"),
]


@pytest.fixture(scope="module")
async def guarded(client: httpx.AsyncClient, owner: TestUser, grantee: TestUser) -> dict[str, Any]:
    """A folder with a product, shared with ``grantee``: what anonymous and stranger callers try."""
    folder = await create_folder(client, owner, name="Guarded")
    await create_product(client, owner, name="Guarded pan", folder_id=folder["id"])
    await share(client, owner, folder_url(folder["id"]), grantee, "viewer")
    return folder


def endpoint(path: str, body: dict[str, Any] | None, folder_id: str, user_id: uuid.UUID) -> Any:
    url = FOLDERS + path.replace("{id}", folder_id).replace("{user}", str(user_id))
    if body is not None:
        body = {key: str(user_id) if value == "{user}" else value for key, value in body.items()}
    return url, body


async def assert_guarded_unchanged(
    client: httpx.AsyncClient, owner: TestUser, grantee: TestUser, guarded: dict[str, Any]
) -> None:
    assert await fetch(client, owner, guarded["id"]) == guarded
    grants = (await client.get(f"{folder_url(guarded['id'])}/permissions", headers=owner.headers)).json()
    assert [(grant["user_id"], grant["level"]) for grant in grants["data"]] == [(str(grantee.id), "viewer")]
    assert await listed_ids(client, owner, FOLDERS, parent_id=guarded["id"]) == set()


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
async def test_anonymous_is_401_on_every_folder_endpoint(
    client: httpx.AsyncClient,
    owner: TestUser,
    grantee: TestUser,
    guarded: dict[str, Any],
    *,
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    before = await folder_total(client, owner)
    url, payload = endpoint(path, body, guarded["id"], grantee.id)
    response = await client.request(method, url, json=payload)
    assert_error(response, 401, "AUTHENTICATION_REQUIRED")
    assert "Guarded" not in response.text
    await assert_guarded_unchanged(client, owner, grantee, guarded)
    assert await folder_total(client, owner) == before


@pytest.mark.parametrize(("method", "path", "body"), [p for p in ENDPOINTS if p.values[1] != ""])
async def test_stranger_is_404_on_every_endpoint_naming_the_folder(
    client: httpx.AsyncClient,
    owner: TestUser,
    grantee: TestUser,
    stranger: TestUser,
    guarded: dict[str, Any],
    *,
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    url, payload = endpoint(path, body, guarded["id"], grantee.id)
    response = await client.request(method, url, json=payload, headers=stranger.headers)
    assert_error(response, 404, "NOT_FOUND")
    assert "Guarded" not in response.text
    await assert_guarded_unchanged(client, owner, grantee, guarded)


async def test_a_folder_id_that_exists_nowhere_is_404(client: httpx.AsyncClient, owner: TestUser) -> None:
    response = await client.get(folder_url(uuid.uuid4()), headers=owner.headers)
    assert_error(response, 404, "NOT_FOUND")


async def test_a_folder_id_that_is_not_a_uuid_names_no_resource(
    client: httpx.AsyncClient, owner: TestUser
) -> None:
    # Paths match UUIDs only (so /products/export is never taken for a product id).
    response = await client.get(folder_url("kitchen"), headers=owner.headers)
    assert_error(response, 404, "NOT_FOUND", None)


async def test_two_folders_moved_into_each_other_at_once_make_no_cycle(
    client: httpx.AsyncClient, owner: TestUser
) -> None:
    first, second = await create_folder(client, owner), await create_folder(client, owner)
    moves = await asyncio.gather(
        client.patch(folder_url(first["id"]), json={"parent_id": second["id"]}, headers=owner.headers),
        client.patch(folder_url(second["id"]), json={"parent_id": first["id"]}, headers=owner.headers),
    )
    assert sorted(response.status_code for response in moves) == [200, 409]
    parents = [
        (await client.get(folder_url(folder["id"]), headers=owner.headers)).json()["data"]["parent_id"]
        for folder in (first, second)
    ]
    assert parents.count(None) == 1  # one of them is still at the top: no cycle
