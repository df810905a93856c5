"""Who may do what to products and folders (object-level authorisation), on both backends.

Every actor meets every action, and the answer each cell expects is written down in a
table here, never derived from the code under test. A caller who may not see an object
gets 404 whatever they try (existence is not revealed); one who may see it but not do
this gets 403. Every test re-reads what it touched, as someone who may see it.
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
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

API_KEYS = "/api/v2/api-keys"
ADMIN_USERS = "/api/v2/admin/users"

Cast = dict[str, TestUser]
Expected = tuple[int, bool, int, int, int]  # read, listed, update, delete, share
ACTIONS = ("read", "listed", "update", "delete", "share")

# fmt: off
# On a product P filed in folder F, both owned by "owner". Grants on P: viewer, editor,
# owner-grantee (owner level). Grants on F: folder-viewer, folder-editor, folder-owner.
PRODUCT_MATRIX: dict[str, Expected] = {
    #                        read  listed  update  delete  share
    "owner":                (200,  True,   200,    204,    201),
    "viewer":               (200,  True,   403,    403,    403),
    "editor":               (200,  True,   200,    403,    403),
    "folder-viewer":        (200,  True,   403,    403,    403),
    "folder-editor":        (200,  True,   200,    403,    403),
    "owner-grantee":        (200,  True,   200,    204,    201),
    "folder-owner":         (200,  True,   200,    204,    201),
    "stranger":             (404,  False,  404,    404,    404),
    "admin":                (200,  True,   200,    204,    201),
}

# On a folder F and its sub-folder G, both owned by "owner". Grants on F: viewer,
# editor, owner-grantee (owner level); they cover G too. Grant on G only: child-viewer.
FOLDER_MATRIX: dict[str, dict[str, Expected]] = {
    "folder": {
        #                    read  listed  update  delete  share
        "owner":            (200,  True,   200,    204,    201),
        "viewer":           (200,  True,   403,    403,    403),
        "editor":           (200,  True,   200,    403,    403),
        "owner-grantee":    (200,  True,   200,    204,    201),
        "child-viewer":     (404,  False,  404,    404,    404),
        "stranger":         (404,  False,  404,    404,    404),
        "admin":            (200,  True,   200,    204,    201),
    },
    "sub-folder": {
        "owner":            (200,  True,   200,    204,    201),
        "viewer":           (200,  True,   403,    403,    403),
        "editor":           (200,  True,   200,    403,    403),
        "owner-grantee":    (200,  True,   200,    204,    201),
        "child-viewer":     (200,  True,   403,    403,    403),
        "stranger":         (404,  False,  404,    404,    404),
        "admin":            (200,  True,   200,    204,    201),
    },
}
# fmt: on

ERROR_CODES = {403: "FORBIDDEN", 404: "NOT_FOUND"}


def product_cells(action: str) -> list[Any]:
    column = ACTIONS.index(action)
    return [pytest.param(actor, row[column], id=actor) for actor, row in PRODUCT_MATRIX.items()]


def folder_cells(action: str) -> list[Any]:
    column = ACTIONS.index(action)
    return [
        pytest.param(target, actor, row[column], id=f"{target}-{actor}")
        for target, rows in FOLDER_MATRIX.items()
        for actor, row in rows.items()
    ]


def token() -> str:
    return secrets.token_hex(5)


def assert_refused(response: httpx.Response, status: int, secret: str) -> None:
    """A refusal with the status's code that gives nothing of the object away."""
    assert response.status_code == status, response.text
    assert single_error(response)["code"] == ERROR_CODES[status]
    assert secret not in response.text


async def read(client: httpx.AsyncClient, user: TestUser, url: str) -> dict[str, Any]:
    response = await client.get(url, headers=user.headers)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


async def list_data(client: httpx.AsyncClient, user: TestUser, url: str) -> list[dict[str, Any]]:
    response = await client.get(url, headers=user.headers)
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


async def grantee_ids(client: httpx.AsyncClient, owner: TestUser, url: str) -> set[str]:
    return {grant["user_id"] for grant in await list_data(client, owner, f"{url}/permissions")}


@pytest.fixture(scope="module")
async def cast(accounts: Accounts) -> Cast:
    """Everyone the matrices need, once per module (and backend)."""
    names = [
        *(actor for actor in PRODUCT_MATRIX if actor != "admin"),
        "child-viewer",  # of the folder matrix
        "recipient",  # whom the share actions share with
        "grantee",  # of the tests after the matrices
    ]
    people = {name: await accounts.create() for name in names}
    people["admin"] = await accounts.create(role=Role.ADMIN)
    people["guest"] = await accounts.create(role=Role.GUEST)
    return people


# --- Products -------------------------------------------------------------------------


@dataclass
class ProductScene:
    token: str
    folder: dict[str, Any]
    product: dict[str, Any]

    @property
    def url(self) -> str:
        return product_url(self.product["id"])


async def build_product_scene(client: httpx.AsyncClient, cast: Cast) -> ProductScene:
    owner, name = cast["owner"], token()
    folder = await create_folder(client, owner, name=f"Shelf {name}")
    product = await create_product(client, owner, name=f"Widget {name}", folder_id=folder["id"])
    for actor, level in (("viewer", "viewer"), ("editor", "editor"), ("owner-grantee", "owner")):
        await share(client, owner, product_url(product["id"]), cast[actor], level)
    for actor, level in (("folder-viewer", "viewer"), ("folder-editor", "editor"), ("folder-owner", "owner")):
        await share(client, owner, folder_url(folder["id"]), cast[actor], level)
    return ProductScene(name, folder, product)


@pytest.fixture(scope="module")
async def product_stage(client: httpx.AsyncClient, cast: Cast) -> ProductScene:
    """For the actions that change nothing."""
    return await build_product_scene(client, cast)


@pytest.fixture
async def product_scene(client: httpx.AsyncClient, cast: Cast) -> ProductScene:
    """A fresh one, for the actions that change it."""
    return await build_product_scene(client, cast)


@pytest.mark.parametrize(("actor", "expected"), product_cells("read"))
async def test_product_read(
    client: httpx.AsyncClient, cast: Cast, product_stage: ProductScene, actor: str, expected: int
) -> None:
    response = await client.get(product_stage.url, headers=cast[actor].headers)
    if expected == 200:
        assert response.status_code == 200, response.text
        assert response.json()["data"]["id"] == product_stage.product["id"]
    else:
        assert_refused(response, expected, product_stage.token)


@pytest.mark.parametrize(("actor", "expected"), product_cells("listed"))
async def test_product_listed(
    client: httpx.AsyncClient, cast: Cast, product_stage: ProductScene, actor: str, expected: bool
) -> None:
    listed = await listed_ids(client, cast[actor], PRODUCTS, q=product_stage.token)
    assert (product_stage.product["id"] in listed) is expected


@pytest.mark.parametrize(("actor", "expected"), product_cells("update"))
async def test_product_update(
    client: httpx.AsyncClient, cast: Cast, product_scene: ProductScene, actor: str, expected: int
) -> None:
    new_name = f"Renamed {product_scene.token}"
    response = await client.patch(product_scene.url, json={"name": new_name}, headers=cast[actor].headers)
    after = await read(client, cast["owner"], product_scene.url)
    if expected == 200:
        assert response.status_code == 200, response.text
        assert (after["name"], after["version"]) == (new_name, 2)
    else:
        assert_refused(response, expected, product_scene.token)
        assert after == product_scene.product


@pytest.mark.parametrize(("actor", "expected"), product_cells("delete"))
async def test_product_delete(
    client: httpx.AsyncClient, cast: Cast, product_scene: ProductScene, actor: str, expected: int
) -> None:
    response = await client.delete(product_scene.url, headers=cast[actor].headers)
    after = await client.get(product_scene.url, headers=cast["owner"].headers)
    if expected == 204:
        assert response.status_code == 204, response.text
        assert after.status_code == 404
    else:
        assert_refused(response, expected, product_scene.token)
        assert after.status_code == 200
        assert after.json()["data"] == product_scene.product


@pytest.mark.parametrize(("actor", "expected"), product_cells("share"))
async def test_product_share(
    client: httpx.AsyncClient, cast: Cast, product_scene: ProductScene, actor: str, expected: int
) -> None:
    recipient = cast["recipient"]
    response = await client.post(
        f"{product_scene.url}/permissions",
        json={"user_id": str(recipient.id), "level": "viewer"},
        headers=cast[actor].headers,
    )
    recipient_reads = await client.get(product_scene.url, headers=recipient.headers)
    granted = str(recipient.id) in await grantee_ids(client, cast["owner"], product_scene.url)
    if expected == 201:
        assert response.status_code == 201, response.text
        assert response.json()["data"]["level"] == "viewer"
        assert (recipient_reads.status_code, granted) == (200, True)
    else:
        assert_refused(response, expected, product_scene.token)
        assert (recipient_reads.status_code, granted) == (404, False)


# --- Folders --------------------------------------------------------------------------


@dataclass
class FolderScene:
    token: str
    folder: dict[str, Any]
    sub_folder: dict[str, Any]

    def target(self, name: str) -> dict[str, Any]:
        return self.folder if name == "folder" else self.sub_folder


async def build_folder_scene(client: httpx.AsyncClient, cast: Cast) -> FolderScene:
    owner, name = cast["owner"], token()
    folder = await create_folder(client, owner, name=f"Shelf {name}")
    sub_folder = await create_folder(client, owner, name=f"Shelf {name} inner", parent_id=folder["id"])
    for actor, level in (("viewer", "viewer"), ("editor", "editor"), ("owner-grantee", "owner")):
        await share(client, owner, folder_url(folder["id"]), cast[actor], level)
    await share(client, owner, folder_url(sub_folder["id"]), cast["child-viewer"], "viewer")
    return FolderScene(name, folder, sub_folder)


@pytest.fixture(scope="module")
async def folder_stage(client: httpx.AsyncClient, cast: Cast) -> FolderScene:
    """For the actions that change nothing."""
    return await build_folder_scene(client, cast)


@pytest.fixture
async def folder_scene(client: httpx.AsyncClient, cast: Cast) -> FolderScene:
    """A fresh one, for the actions that change it."""
    return await build_folder_scene(client, cast)


@pytest.mark.parametrize(("target", "actor", "expected"), folder_cells("read"))
async def test_folder_read(
    client: httpx.AsyncClient,
    cast: Cast,
    folder_stage: FolderScene,
    *,
    target: str,
    actor: str,
    expected: int,
) -> None:
    folder = folder_stage.target(target)
    response = await client.get(folder_url(folder["id"]), headers=cast[actor].headers)
    if expected == 200:
        assert response.status_code == 200, response.text
        assert response.json()["data"]["id"] == folder["id"]
    else:
        assert_refused(response, expected, folder_stage.token)


@pytest.mark.parametrize(("target", "actor", "expected"), folder_cells("listed"))
async def test_folder_listed(
    client: httpx.AsyncClient,
    cast: Cast,
    folder_stage: FolderScene,
    *,
    target: str,
    actor: str,
    expected: bool,
) -> None:
    listed = await listed_ids(client, cast[actor], FOLDERS, q=folder_stage.token)
    assert (folder_stage.target(target)["id"] in listed) is expected


@pytest.mark.parametrize(("target", "actor", "expected"), folder_cells("update"))
async def test_folder_update(
    client: httpx.AsyncClient,
    cast: Cast,
    folder_scene: FolderScene,
    *,
    target: str,
    actor: str,
    expected: int,
) -> None:
    folder = folder_scene.target(target)
    url, new_name = folder_url(folder["id"]), f"Renamed {folder_scene.token}"
    response = await client.patch(url, json={"name": new_name}, headers=cast[actor].headers)
    after = await read(client, cast["owner"], url)
    if expected == 200:
        assert response.status_code == 200, response.text
        assert (after["name"], after["version"]) == (new_name, 2)
    else:
        assert_refused(response, expected, folder_scene.token)
        assert after == folder


@pytest.mark.parametrize(("target", "actor", "expected"), folder_cells("delete"))
async def test_folder_delete(
    client: httpx.AsyncClient,
    cast: Cast,
    folder_scene: FolderScene,
    *,
    target: str,
    actor: str,
    expected: int,
) -> None:
    # recursive=true: the matrix is about who may delete, not about emptiness.
    url = folder_url(folder_scene.target(target)["id"])
    response = await client.delete(url, params={"recursive": "true"}, headers=cast[actor].headers)
    owner = cast["owner"]
    after = await client.get(url, headers=owner.headers)
    sub_folder = await client.get(folder_url(folder_scene.sub_folder["id"]), headers=owner.headers)
    if expected == 204:
        assert response.status_code == 204, response.text
        assert (after.status_code, sub_folder.status_code) == (404, 404)
    else:
        assert_refused(response, expected, folder_scene.token)
        assert after.status_code == 200
        assert after.json()["data"] == folder_scene.target(target)
        assert sub_folder.status_code == 200


@pytest.mark.parametrize(("target", "actor", "expected"), folder_cells("share"))
async def test_folder_share(
    client: httpx.AsyncClient,
    cast: Cast,
    folder_scene: FolderScene,
    *,
    target: str,
    actor: str,
    expected: int,
) -> None:
    recipient, url = cast["recipient"], folder_url(folder_scene.target(target)["id"])
    response = await client.post(
        f"{url}/permissions",
        json={"user_id": str(recipient.id), "level": "viewer"},
        headers=cast[actor].headers,
    )
    recipient_reads = await client.get(url, headers=recipient.headers)
    granted = str(recipient.id) in await grantee_ids(client, cast["owner"], url)
    if expected == 201:
        assert response.status_code == 201, response.text
        assert (recipient_reads.status_code, granted) == (200, True)
    else:
        assert_refused(response, expected, folder_scene.token)
        assert (recipient_reads.status_code, granted) == (404, False)


# --- Grants changing ------------------------------------------------------------------


async def test_revoked_product_grant_takes_access_away_at_once(client: httpx.AsyncClient, cast: Cast) -> None:
    owner, grantee, name = cast["owner"], cast["grantee"], token()
    product = await create_product(client, owner, name=f"Widget {name}")
    url = product_url(product["id"])
    await share(client, owner, url, grantee, "viewer")
    assert (await client.get(url, headers=grantee.headers)).status_code == 200
    assert await listed_ids(client, grantee, PRODUCTS, q=name) == {product["id"]}

    revoked = await client.delete(f"{url}/permissions/{grantee.id}", headers=owner.headers)

    assert revoked.status_code == 204
    assert (await client.get(url, headers=grantee.headers)).status_code == 404
    assert await listed_ids(client, grantee, PRODUCTS, q=name) == set()
    assert await grantee_ids(client, owner, url) == set()


async def test_revoked_folder_grant_takes_away_its_sub_folders_and_products_at_once(
    client: httpx.AsyncClient, cast: Cast
) -> None:
    owner, grantee, name = cast["owner"], cast["grantee"], token()
    folder = await create_folder(client, owner, name=f"Shelf {name}")
    sub_folder = await create_folder(client, owner, name=f"Shelf {name} inner", parent_id=folder["id"])
    product = await create_product(client, owner, name=f"Widget {name}", folder_id=sub_folder["id"])
    urls = [folder_url(folder["id"]), folder_url(sub_folder["id"]), product_url(product["id"])]
    await share(client, owner, urls[0], grantee, "editor")
    assert [(await client.get(url, headers=grantee.headers)).status_code for url in urls] == [200] * 3

    revoked = await client.delete(f"{urls[0]}/permissions/{grantee.id}", headers=owner.headers)

    assert revoked.status_code == 204
    assert [(await client.get(url, headers=grantee.headers)).status_code for url in urls] == [404] * 3
    assert await listed_ids(client, grantee, FOLDERS, q=name) == set()
    assert await listed_ids(client, grantee, PRODUCTS, q=name) == set()


async def test_revoking_twice_is_404_the_second_time(client: httpx.AsyncClient, cast: Cast) -> None:
    owner, grantee = cast["owner"], cast["grantee"]
    url = product_url((await create_product(client, owner))["id"])
    await share(client, owner, url, grantee, "viewer")
    assert (await client.delete(f"{url}/permissions/{grantee.id}", headers=owner.headers)).status_code == 204
    again = await client.delete(f"{url}/permissions/{grantee.id}", headers=owner.headers)
    assert again.status_code == 404
    error = single_error(again)
    assert (error["code"], error["field"]) == ("NOT_FOUND", "user_id")
    assert await grantee_ids(client, owner, url) == set()


@pytest.mark.parametrize("kind", ["product", "folder"])
async def test_level_change_from_viewer_to_editor_and_back_takes_effect(
    client: httpx.AsyncClient, cast: Cast, kind: str
) -> None:
    owner, grantee = cast["owner"], cast["grantee"]
    if kind == "product":
        url = product_url((await create_product(client, owner))["id"])
    else:
        url = folder_url((await create_folder(client, owner))["id"])

    assert (await share(client, owner, url, grantee, "viewer")).status_code == 201
    assert (await client.patch(url, json={"name": "As viewer"}, headers=grantee.headers)).status_code == 403

    upgraded = await share(client, owner, url, grantee, "editor")
    assert upgraded.status_code == 200
    assert upgraded.json()["data"]["level"] == "editor"
    assert (await client.patch(url, json={"name": "As editor"}, headers=grantee.headers)).status_code == 200
    assert (await read(client, owner, url))["name"] == "As editor"
    grants = await list_data(client, owner, f"{url}/permissions")
    assert [(grant["user_id"], grant["level"]) for grant in grants] == [(str(grantee.id), "editor")]

    assert (await share(client, owner, url, grantee, "viewer")).status_code == 200
    assert (await client.patch(url, json={"name": "Again"}, headers=grantee.headers)).status_code == 403
    assert (await read(client, owner, url))["name"] == "As editor"


# --- Roles and API keys ---------------------------------------------------------------


async def test_guest_reads_what_is_shared_but_every_write_is_forbidden(
    client: httpx.AsyncClient, cast: Cast
) -> None:
    owner, guest, other = cast["owner"], cast["guest"], cast["grantee"]
    folder = await create_folder(client, owner)
    product = await create_product(client, owner, folder_id=folder["id"])
    furl, purl = folder_url(folder["id"]), product_url(product["id"])
    # Even owner level: the role has no write permission to use it with.
    await share(client, owner, furl, guest, "owner")
    await share(client, owner, purl, guest, "owner")
    assert (await client.get(furl, headers=guest.headers)).status_code == 200
    assert (await client.get(purl, headers=guest.headers)).status_code == 200

    product_body = {"name": "Guest", "price": "1.00", "currency": "EUR"}
    writes = [
        ("PATCH", purl, {"name": "Guest"}, "products:write"),
        ("PUT", purl, product_body, "products:write"),
        ("DELETE", purl, None, "products:write"),
        ("POST", f"{purl}/permissions", {"user_id": str(other.id), "level": "viewer"}, "products:write"),
        ("POST", PRODUCTS, {**product_body, "folder_id": folder["id"]}, "products:write"),
        ("PATCH", furl, {"name": "Guest"}, "folders:write"),
        ("PUT", furl, {"name": "Guest"}, "folders:write"),
        ("DELETE", furl, None, "folders:write"),
        ("POST", f"{furl}/permissions", {"user_id": str(other.id), "level": "viewer"}, "folders:write"),
        ("POST", FOLDERS, {"name": "Guest", "parent_id": folder["id"]}, "folders:write"),
    ]
    for method, url, body, permission in writes:
        response = await client.request(method, url, json=body, headers=guest.headers)
        assert response.status_code == 403, (method, url, response.text)
        error = single_error(response)
        assert error["code"] == "FORBIDDEN"
        assert permission in error["message"]

    assert await read(client, owner, purl) == product
    assert await read(client, owner, furl) == folder
    assert await grantee_ids(client, owner, purl) == {str(guest.id)}
    assert await listed_ids(client, owner, PRODUCTS, folder_id=folder["id"]) == {product["id"]}
    assert await listed_ids(client, owner, FOLDERS, parent_id=folder["id"]) == set()


async def create_key(client: httpx.AsyncClient, owner: TestUser, scopes: list[str]) -> dict[str, str]:
    response = await client.post(API_KEYS, json={"name": "k", "scopes": scopes}, headers=owner.headers)
    assert response.status_code == 201, response.text
    return {"X-API-Key": response.json()["data"]["secret"]}


async def test_api_key_scoped_products_read_cannot_write_what_its_owner_could(
    client: httpx.AsyncClient, cast: Cast
) -> None:
    owner = cast["owner"]
    product = await create_product(client, owner, name=f"Widget {token()}")
    url = product_url(product["id"])
    key = await create_key(client, owner, ["products:read"])
    reads = await client.get(url, headers=key)
    assert reads.status_code == 200
    assert reads.json()["data"] == product

    body = {"name": "By key", "price": "1.00", "currency": "EUR"}
    writes = [
        ("PATCH", url, {"name": "By key"}),
        ("PUT", url, body),
        ("DELETE", url, None),
        ("POST", f"{url}/permissions", {"user_id": str(cast["grantee"].id), "level": "viewer"}),
        ("POST", PRODUCTS, {**body, "name": f"By key {product['id']}"}),
    ]
    for method, target, payload in writes:
        response = await client.request(method, target, json=payload, headers=key)
        assert response.status_code == 403, (method, target, response.text)
        assert single_error(response)["code"] == "FORBIDDEN"

    assert await read(client, owner, url) == product
    assert await grantee_ids(client, owner, url) == set()
    assert await listed_ids(client, owner, PRODUCTS, q=f"By key {product['id']}") == set()
    # The owner's own session could do it all along.
    changed = await client.patch(url, json={"name": "By owner"}, headers=owner.headers)
    assert changed.status_code == 200


async def test_api_key_scoped_folders_read_cannot_write_its_owners_folder(
    client: httpx.AsyncClient, cast: Cast
) -> None:
    owner = cast["owner"]
    folder = await create_folder(client, owner)
    url = folder_url(folder["id"])
    key = await create_key(client, owner, ["folders:read"])
    assert (await client.get(url, headers=key)).status_code == 200
    for method, target, payload in [
        ("PATCH", url, {"name": "By key"}),
        ("PUT", url, {"name": "By key"}),
        ("DELETE", url, None),
        ("POST", FOLDERS, {"name": "By key", "parent_id": folder["id"]}),
    ]:
        response = await client.request(method, target, json=payload, headers=key)
        assert response.status_code == 403, (method, target, response.text)
    assert await read(client, owner, url) == folder
    assert await listed_ids(client, owner, FOLDERS, parent_id=folder["id"]) == set()


# --- Someone else's ids ---------------------------------------------------------------


@dataclass
class Foreign:
    """The owner's folder and product (shared with folder-viewer and viewer), and the
    stranger's own folder and product."""

    folder: dict[str, Any]
    product: dict[str, Any]
    own_folder: dict[str, Any]
    own_product: dict[str, Any]
    cast: Cast


@pytest.fixture(scope="module")
async def foreign(client: httpx.AsyncClient, cast: Cast) -> Foreign:
    owner, stranger = cast["owner"], cast["stranger"]
    folder = await create_folder(client, owner, name="Private shelf")
    product = await create_product(client, owner, name="Private widget", folder_id=folder["id"])
    await share(client, owner, product_url(product["id"]), cast["viewer"], "viewer")
    await share(client, owner, folder_url(folder["id"]), cast["folder-viewer"], "viewer")
    own_folder = await create_folder(client, stranger)
    own_product = await create_product(client, stranger, folder_id=own_folder["id"])
    return Foreign(folder, product, own_folder, own_product, cast)


PathOf = Callable[[Foreign], str]
PRODUCT_BODY = {"name": "Mine now", "price": "1.00", "currency": "EUR"}
GRANT_BODY = {"user_id": "<accomplice>", "level": "owner"}


def _p(f: Foreign) -> str:
    return product_url(f.product["id"])


def _f(f: Foreign) -> str:
    return folder_url(f.folder["id"])


FOREIGN_IDS: list[Any] = [
    pytest.param("GET", _p, None, id="product-get"),
    pytest.param("PUT", _p, PRODUCT_BODY, id="product-put"),
    pytest.param("PATCH", _p, {"name": "Mine now"}, id="product-patch"),
    pytest.param("DELETE", _p, None, id="product-delete"),
    pytest.param("GET", lambda f: f"{_p(f)}/permissions", None, id="product-permissions-list"),
    pytest.param("POST", lambda f: f"{_p(f)}/permissions", GRANT_BODY, id="product-permissions-add"),
    pytest.param(
        "DELETE",
        lambda f: f"{_p(f)}/permissions/{f.cast['viewer'].id}",
        None,
        id="product-permissions-remove",
    ),
    pytest.param("GET", _f, None, id="folder-get"),
    pytest.param("PUT", _f, {"name": "Mine now"}, id="folder-put"),
    pytest.param("PATCH", _f, {"name": "Mine now"}, id="folder-patch"),
    pytest.param("DELETE", _f, None, id="folder-delete"),
    pytest.param("GET", lambda f: f"{_f(f)}/products", None, id="folder-products"),
    pytest.param("GET", lambda f: f"{_f(f)}/permissions", None, id="folder-permissions-list"),
    pytest.param("POST", lambda f: f"{_f(f)}/permissions", GRANT_BODY, id="folder-permissions-add"),
    pytest.param(
        "DELETE",
        lambda f: f"{_f(f)}/permissions/{f.cast['folder-viewer'].id}",
        None,
        id="folder-permissions-remove",
    ),
    # The stranger's own objects, with the user id of someone granted on the owner's.
    pytest.param(
        "DELETE",
        lambda f: f"{product_url(f.own_product['id'])}/permissions/{f.cast['viewer'].id}",
        None,
        id="own-product-permissions-remove-foreign-user",
    ),
    pytest.param(
        "DELETE",
        lambda f: f"{folder_url(f.own_folder['id'])}/permissions/{f.cast['folder-viewer'].id}",
        None,
        id="own-folder-permissions-remove-foreign-user",
    ),
    # Moving the stranger's own folder under the owner's.
    pytest.param(
        "PATCH",
        lambda f: folder_url(f.own_folder["id"]),
        {"parent_id": "<folder>"},
        id="own-folder-moved-under-foreign-folder",
    ),
    pytest.param(
        "POST", lambda f: FOLDERS, {"name": "Mine", "parent_id": "<folder>"}, id="folder-created-in-foreign"
    ),
]


def fill(body: dict[str, Any] | None, f: Foreign) -> dict[str, Any] | None:
    if body is None:
        return None
    values = {"<folder>": f.folder["id"], "<accomplice>": str(f.cast["recipient"].id)}
    return {key: values.get(value, value) for key, value in body.items()}


@pytest.mark.parametrize(("method", "path", "body"), FOREIGN_IDS)
async def test_another_users_id_in_any_path_position_is_404_and_changes_nothing(
    client: httpx.AsyncClient, foreign: Foreign, method: str, path: PathOf, body: dict[str, Any] | None
) -> None:
    cast = foreign.cast
    owner, stranger = cast["owner"], cast["stranger"]
    response = await client.request(method, path(foreign), json=fill(body, foreign), headers=stranger.headers)

    assert response.status_code == 404, response.text
    assert single_error(response)["code"] == "NOT_FOUND"
    assert "Private" not in response.text
    assert await read(client, owner, _p(foreign)) == foreign.product
    assert await read(client, owner, _f(foreign)) == foreign.folder
    assert await grantee_ids(client, owner, _p(foreign)) == {str(cast["viewer"].id)}
    assert await grantee_ids(client, owner, _f(foreign)) == {str(cast["folder-viewer"].id)}
    assert await listed_ids(client, owner, FOLDERS, parent_id=foreign.folder["id"]) == set()
    own = await read(client, stranger, folder_url(foreign.own_folder["id"]))
    assert own == foreign.own_folder


# --- What is created inside a shared folder -------------------------------------------


async def test_product_an_editor_files_in_a_folder_is_visible_to_the_folder_owner(
    client: httpx.AsyncClient, cast: Cast
) -> None:
    owner, editor, name = cast["owner"], cast["grantee"], token()
    folder = await create_folder(client, owner, name=f"Shelf {name}")
    await share(client, owner, folder_url(folder["id"]), editor, "editor")

    product = await create_product(client, editor, name=f"Widget {name}", folder_id=folder["id"])

    assert product["owner_id"] == str(editor.id)
    assert await read(client, owner, product_url(product["id"])) == product
    assert await listed_ids(client, owner, PRODUCTS, q=name) == {product["id"]}
    assert await listed_ids(client, owner, f"{folder_url(folder['id'])}/products") == {product["id"]}


async def test_folder_owner_may_change_and_delete_what_an_editor_created_inside(
    client: httpx.AsyncClient, cast: Cast
) -> None:
    owner, editor = cast["owner"], cast["grantee"]
    folder = await create_folder(client, owner)
    await share(client, owner, folder_url(folder["id"]), editor, "editor")
    sub_folder = await create_folder(client, editor, parent_id=folder["id"])
    product = await create_product(client, editor, folder_id=sub_folder["id"])
    purl, surl = product_url(product["id"]), folder_url(sub_folder["id"])
    assert sub_folder["owner_id"] == str(editor.id)

    assert (await client.patch(purl, json={"name": "Owner's now"}, headers=owner.headers)).status_code == 200
    assert (await client.patch(surl, json={"name": "Owner's now"}, headers=owner.headers)).status_code == 200
    assert (await client.delete(purl, headers=owner.headers)).status_code == 204
    assert (await client.delete(surl, headers=owner.headers)).status_code == 204

    assert (await client.get(purl, headers=editor.headers)).status_code == 404
    assert (await client.get(surl, headers=editor.headers)).status_code == 404


# --- Moving out of the owner's reach --------------------------------------------------
# Filing something in a folder one owns would make one its owner: moving is an owner's call.


@pytest.mark.parametrize("destination", ["own-folder", "no-folder"])
@pytest.mark.parametrize("granted_on", ["product", "folder"])
async def test_editor_cannot_move_a_product_to_gain_or_take_away_access(
    client: httpx.AsyncClient, cast: Cast, granted_on: str, destination: str
) -> None:
    owner, editor = cast["owner"], cast["grantee"]
    folder = await create_folder(client, owner)
    product = await create_product(client, owner, folder_id=folder["id"])
    url = product_url(product["id"])
    await share(client, owner, url if granted_on == "product" else folder_url(folder["id"]), editor, "editor")
    target = (await create_folder(client, editor))["id"] if destination == "own-folder" else None

    response = await client.patch(url, json={"folder_id": target}, headers=editor.headers)

    assert response.status_code == 403, response.text
    error = single_error(response)
    assert (error["code"], error["field"]) == ("FORBIDDEN", "folder_id")
    assert await read(client, owner, url) == product
    assert (await client.delete(url, headers=editor.headers)).status_code == 403


@pytest.mark.parametrize("destination", ["own-folder", "top-level"])
async def test_editor_cannot_move_a_sub_folder_to_gain_or_take_away_access(
    client: httpx.AsyncClient, cast: Cast, destination: str
) -> None:
    owner, editor = cast["owner"], cast["grantee"]
    folder = await create_folder(client, owner)
    sub_folder = await create_folder(client, owner, parent_id=folder["id"])
    await share(client, owner, folder_url(folder["id"]), editor, "editor")
    target = (await create_folder(client, editor))["id"] if destination == "own-folder" else None
    url = folder_url(sub_folder["id"])

    response = await client.patch(url, json={"parent_id": target}, headers=editor.headers)

    assert response.status_code == 403, response.text
    error = single_error(response)
    assert (error["code"], error["field"]) == ("FORBIDDEN", "parent_id")
    assert await read(client, owner, url) == sub_folder
    assert (await client.delete(url, headers=editor.headers)).status_code == 403


# --- folder_id in a product body ------------------------------------------------------


async def file_product(
    client: httpx.AsyncClient, user: TestUser, method: str, folder_id: str, name: str
) -> tuple[httpx.Response, dict[str, Any] | None]:
    """Create (POST) or change (PUT, PATCH) a product of ``user`` to be in ``folder_id``;
    the response, and the product changed (None for POST)."""
    body = {"name": f"Widget {name}", "price": "2.00", "currency": "EUR", "folder_id": folder_id}
    if method == "POST":
        return await client.post(PRODUCTS, json=body, headers=user.headers), None
    mine = await create_product(client, user, name=f"Mine {name}")
    if method == "PATCH":
        body = {"folder_id": folder_id}
    response = await client.request(method, product_url(mine["id"]), json=body, headers=user.headers)
    return response, mine


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
@pytest.mark.parametrize(
    ("who", "status", "code"),
    [
        pytest.param("stranger", 404, "NOT_FOUND", id="invisible-folder"),
        pytest.param("folder-viewer", 403, "FORBIDDEN", id="viewed-folder"),
    ],
)
async def test_folder_id_in_a_product_body_needs_editor_access_to_that_folder(
    client: httpx.AsyncClient, cast: Cast, *, method: str, who: str, status: int, code: str
) -> None:
    owner, user, name = cast["owner"], cast[who], token()
    folder = await create_folder(client, owner, name=f"Shelf {name}")
    if who == "folder-viewer":
        await share(client, owner, folder_url(folder["id"]), user, "viewer")

    response, mine = await file_product(client, user, method, folder["id"], name)

    assert response.status_code == status, response.text
    error = single_error(response)
    assert (error["code"], error["field"]) == (code, "folder_id")
    assert await listed_ids(client, owner, f"{folder_url(folder['id'])}/products") == set()
    if mine is not None:
        assert await read(client, user, product_url(mine["id"])) == mine
    else:
        assert await listed_ids(client, user, PRODUCTS, q=name) == set()


async def test_folder_id_naming_no_folder_at_all_is_404_on_folder_id(
    client: httpx.AsyncClient, cast: Cast
) -> None:
    response, _ = await file_product(client, cast["owner"], "POST", str(uuid.uuid4()), token())
    assert response.status_code == 404
    assert single_error(response)["field"] == "folder_id"


# --- Export ---------------------------------------------------------------------------


async def exported_ids(client: httpx.AsyncClient, user: TestUser) -> set[str]:
    response = await client.get(f"{PRODUCTS}/export", params={"format": "ndjson"}, headers=user.headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/x-ndjson")
    return {orjson.loads(line)["id"] for line in response.text.splitlines() if line}


async def test_export_holds_exactly_what_the_caller_may_see(
    client: httpx.AsyncClient, accounts: Accounts, cast: Cast
) -> None:
    owner = cast["owner"]
    stranger, grantee = await accounts.create(), await accounts.create()
    folder = await create_folder(client, owner)
    sub_folder = await create_folder(client, owner, parent_id=folder["id"])
    in_folder = await create_product(client, owner, folder_id=folder["id"])
    in_sub_folder = await create_product(client, owner, folder_id=sub_folder["id"])
    deleted = await create_product(client, owner, folder_id=folder["id"])
    shared_alone = await create_product(client, owner)
    await create_product(client, owner)  # not shared
    await share(client, owner, folder_url(folder["id"]), grantee, "viewer")
    await share(client, owner, product_url(shared_alone["id"]), grantee, "viewer")
    assert (await client.delete(product_url(deleted["id"]), headers=owner.headers)).status_code == 204

    assert await exported_ids(client, stranger) == set()
    assert await exported_ids(client, grantee) == {in_folder["id"], in_sub_folder["id"], shared_alone["id"]}


# --- Grant rules ----------------------------------------------------------------------


async def grant(client: httpx.AsyncClient, sharer: TestUser, url: str, **body: Any) -> httpx.Response:
    return await client.post(f"{url}/permissions", json={"level": "viewer", **body}, headers=sharer.headers)


@pytest.fixture
async def own_product_url(client: httpx.AsyncClient, cast: Cast) -> str:
    return product_url((await create_product(client, cast["owner"]))["id"])


async def test_sharing_with_yourself_is_refused(
    client: httpx.AsyncClient, cast: Cast, own_product_url: str
) -> None:
    response = await grant(client, cast["owner"], own_product_url, user_id=str(cast["owner"].id))
    assert response.status_code == 422
    assert single_error(response)["field"] == "user_id"
    assert await grantee_ids(client, cast["owner"], own_product_url) == set()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"user_id": str(uuid.uuid4())}, "user_id", id="unknown-id"),
        pytest.param({"email": "nobody-at-all@example.com"}, "email", id="unknown-email"),
    ],
)
async def test_sharing_with_an_unknown_account_is_refused(
    client: httpx.AsyncClient, cast: Cast, own_product_url: str, body: dict[str, str], field: str
) -> None:
    response = await grant(client, cast["owner"], own_product_url, **body)
    assert response.status_code == 422
    error = single_error(response)
    assert (error["code"], error["field"]) == ("VALIDATION_ERROR", field)
    assert await grantee_ids(client, cast["owner"], own_product_url) == set()


async def test_sharing_with_an_inactive_account_is_refused(
    client: httpx.AsyncClient, accounts: Accounts, cast: Cast, own_product_url: str
) -> None:
    gone = await accounts.create(login=False)
    deactivated = await client.patch(
        f"{ADMIN_USERS}/{gone.id}", json={"is_active": False}, headers=cast["admin"].headers
    )
    assert deactivated.status_code == 200, deactivated.text
    for body in ({"user_id": str(gone.id)}, {"email": gone.email}):
        response = await grant(client, cast["owner"], own_product_url, **body)
        assert response.status_code == 422, body
    assert await grantee_ids(client, cast["owner"], own_product_url) == set()


async def test_sharing_by_email_finds_the_account_whatever_the_case(
    client: httpx.AsyncClient, cast: Cast, own_product_url: str
) -> None:
    grantee = cast["grantee"]
    response = await grant(client, cast["owner"], own_product_url, email=grantee.email.upper())
    assert response.status_code == 201, response.text
    assert response.json()["data"]["user_id"] == str(grantee.id)
    assert (await client.get(own_product_url, headers=grantee.headers)).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({}, id="neither-id-nor-email"),
        pytest.param({"user_id": "<grantee>", "email": "<grantee>"}, id="both"),
        pytest.param({"user_id": "<grantee>", "level": "admin"}, id="unknown-level"),
        pytest.param({"user_id": "<grantee>", "expires": "never"}, id="unknown-field"),
    ],
)
async def test_malformed_grant_is_422_and_grants_nothing(
    client: httpx.AsyncClient, cast: Cast, own_product_url: str, body: dict[str, str]
) -> None:
    grantee = cast["grantee"]
    values = {"user_id": str(grantee.id), "email": grantee.email}
    filled = {key: values[key] if value == "<grantee>" else value for key, value in body.items()}
    response = await grant(client, cast["owner"], own_product_url, **filled)
    assert response.status_code == 422
    assert await grantee_ids(client, cast["owner"], own_product_url) == set()


@pytest.mark.parametrize("level", ["viewer", "editor"])
@pytest.mark.parametrize("kind", ["product", "folder"])
async def test_only_owners_list_or_revoke_grants(
    client: httpx.AsyncClient, cast: Cast, kind: str, level: str
) -> None:
    owner, member, other = cast["owner"], cast["grantee"], cast["recipient"]
    if kind == "product":
        url = product_url((await create_product(client, owner))["id"])
    else:
        url = folder_url((await create_folder(client, owner))["id"])
    await share(client, owner, url, member, level)
    await share(client, owner, url, other, "viewer")

    listed = await client.get(f"{url}/permissions", headers=member.headers)
    revoked = await client.delete(f"{url}/permissions/{other.id}", headers=member.headers)

    assert (listed.status_code, revoked.status_code) == (403, 403)
    assert other.email not in listed.text
    assert await grantee_ids(client, owner, url) == {str(member.id), str(other.id)}


async def test_concurrent_grants_to_the_same_user_make_one_grant(
    client: httpx.AsyncClient, accounts: Accounts
) -> None:
    owner, grantee = await accounts.create(), await accounts.create()
    product = await create_product(client, owner)
    url = f"{product_url(product['id'])}/permissions"
    responses = await asyncio.gather(
        *(
            client.post(url, json={"user_id": str(grantee.id), "level": level}, headers=owner.headers)
            for level in ("viewer", "editor", "viewer", "editor")
        )
    )
    assert sorted(response.status_code for response in responses)[-1] < 300, [r.text for r in responses]
    assert sum(response.status_code == 201 for response in responses) == 1
    listed = (await client.get(url, headers=owner.headers)).json()["data"]
    assert [grant["user_id"] for grant in listed] == [str(grantee.id)]
