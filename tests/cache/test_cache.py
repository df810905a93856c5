"""The resource cache as clients and admins see it, on both backends (memory on SQLite,
Redis on PostgreSQL): reads served from it, every write and sharing change seen at once,
one viewer's entry never served to another, and the admin endpoints."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from keel.app import create_app
from keel.platform.caching import resource_key
from keel.settings import Settings
from keel.users.models import Role
from tests import services
from tests.catalog import create_folder, create_product, folder_url, product_url, share
from tests.conftest import free_port, make_settings, serve_app
from tests.identity import Accounts, TestUser

CACHE = "/api/v2/cache"


@pytest.fixture(scope="module")
def settings(backend_settings: dict[str, Any]) -> Settings:
    # Its own Redis namespace: the admin endpoints count and drop every entry.
    prefix = f"{services.REDIS_PREFIX}cache-{uuid.uuid4().hex[:8]}:"
    return make_settings(**{**backend_settings, "redis_key_prefix": prefix})


@pytest.fixture(scope="module")
async def admin(accounts: Accounts) -> TestUser:
    return await accounts.create(role=Role.ADMIN)


async def stats(client: httpx.AsyncClient, admin: TestUser) -> dict[str, Any]:
    response = await client.get(f"{CACHE}/stats", headers=admin.headers)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


async def get(client: httpx.AsyncClient, user: TestUser, url: str, **headers: str) -> httpx.Response:
    return await client.get(url, headers={**user.headers, **headers})


async def test_a_second_read_is_a_hit_and_answers_the_same(
    client: httpx.AsyncClient, accounts: Accounts, admin: TestUser, backend: str
) -> None:
    owner = await accounts.create()
    product = await create_product(client, owner, name="Cached")
    before = await stats(client, admin)
    first = await get(client, owner, product_url(product["id"]))
    second = await get(client, owner, product_url(product["id"]))
    after = await stats(client, admin)

    assert first.status_code == second.status_code == 200
    assert first.json()["data"] == second.json()["data"] == product
    assert first.headers["ETag"] == second.headers["ETag"]
    assert second.json()["links"] == first.json()["links"]
    assert after["cache_misses"] == before["cache_misses"] + 1
    assert after["cache_hits"] == before["cache_hits"] + 1
    assert after["total_requests"] == before["total_requests"] + 2
    assert after["current_size_bytes"] > before["current_size_bytes"]
    assert after["backend"] == ("redis" if backend == "postgres" else "memory")
    assert after["max_size_bytes"] == 64 * 1024 * 1024
    assert 0 < after["hit_rate"] <= 1


async def test_if_none_match_is_answered_from_the_cache(
    client: httpx.AsyncClient, accounts: Accounts
) -> None:
    owner = await accounts.create()
    product = await create_product(client, owner)
    etag = (await get(client, owner, product_url(product["id"]))).headers["ETag"]
    not_modified = await get(client, owner, product_url(product["id"]), **{"If-None-Match": etag})
    assert not_modified.status_code == 304
    assert not_modified.headers["ETag"] == etag


async def test_writes_are_seen_at_once(client: httpx.AsyncClient, accounts: Accounts) -> None:
    owner = await accounts.create()
    product = await create_product(client, owner, name="Before")
    url = product_url(product["id"])
    await get(client, owner, url)
    patched = await client.patch(url, json={"name": "After"}, headers=owner.headers)
    after_patch = await get(client, owner, url)
    replaced = await client.put(
        url, json={"name": "Replaced", "price": "1.00", "currency": "EUR"}, headers=owner.headers
    )
    after_put = await get(client, owner, url)
    deleted = await client.delete(url, headers=owner.headers)
    after_delete = await get(client, owner, url)

    assert patched.status_code == 200
    assert after_patch.json()["data"]["name"] == "After"
    assert after_patch.headers["ETag"] == patched.headers["ETag"]
    assert replaced.status_code == 200
    assert after_put.json()["data"]["name"] == "Replaced"
    assert deleted.status_code == 204
    assert after_delete.status_code == 404


async def test_a_folder_read_sees_its_rename_at_once(client: httpx.AsyncClient, accounts: Accounts) -> None:
    owner = await accounts.create()
    folder = await create_folder(client, owner, name="Old")
    first = await get(client, owner, folder_url(folder["id"]))
    renamed = await client.patch(folder_url(folder["id"]), json={"name": "New"}, headers=owner.headers)
    second = await get(client, owner, folder_url(folder["id"]))

    assert first.json()["data"]["name"] == "Old"
    assert renamed.status_code == 200
    assert second.json()["data"]["name"] == "New"
    assert second.headers["ETag"] == renamed.headers["ETag"]
    assert f"{folder_url(folder['id'])}/products" in [link["href"] for link in second.json()["links"]]


async def test_one_viewers_entry_is_never_served_to_another(
    client: httpx.AsyncClient, accounts: Accounts
) -> None:
    owner, stranger = await accounts.create(), await accounts.create()
    product = await create_product(client, owner)
    folder = await create_folder(client, owner)
    assert (await get(client, owner, product_url(product["id"]))).status_code == 200
    assert (await get(client, owner, folder_url(folder["id"]))).status_code == 200

    assert (await get(client, stranger, product_url(product["id"]))).status_code == 404
    assert (await get(client, stranger, folder_url(folder["id"]))).status_code == 404


async def test_a_revoked_product_share_is_not_served_from_the_cache(
    client: httpx.AsyncClient, accounts: Accounts
) -> None:
    owner, viewer = await accounts.create(), await accounts.create()
    product = await create_product(client, owner)
    url = product_url(product["id"])
    await share(client, owner, url, viewer, "viewer")
    assert (await get(client, viewer, url)).status_code == 200
    assert (await get(client, viewer, url)).status_code == 200  # now cached

    revoked = await client.delete(f"{url}/permissions/{viewer.id}", headers=owner.headers)
    assert revoked.status_code == 204
    assert (await get(client, viewer, url)).status_code == 404


async def test_a_revoked_folder_share_hides_the_folder_and_its_products(
    client: httpx.AsyncClient, accounts: Accounts
) -> None:
    owner, viewer = await accounts.create(), await accounts.create()
    parent = await create_folder(client, owner, name="Shared")
    child = await create_folder(client, owner, name="Inside", parent_id=parent["id"])
    product = await create_product(client, owner, folder_id=child["id"])
    await share(client, owner, folder_url(parent["id"]), viewer, "viewer")
    urls = [folder_url(parent["id"]), folder_url(child["id"]), product_url(product["id"])]
    for url in urls:
        assert (await get(client, viewer, url)).status_code == 200

    revoked = await client.delete(
        f"{folder_url(parent['id'])}/permissions/{viewer.id}", headers=owner.headers
    )
    assert revoked.status_code == 204
    assert [(await get(client, viewer, url)).status_code for url in urls] == [404, 404, 404]


async def test_moving_a_folder_out_of_a_shared_tree_hides_it(
    client: httpx.AsyncClient, accounts: Accounts
) -> None:
    owner, viewer = await accounts.create(), await accounts.create()
    shared = await create_folder(client, owner, name="Shared")
    moving = await create_folder(client, owner, name="Moving", parent_id=shared["id"])
    product = await create_product(client, owner, folder_id=moving["id"])
    await share(client, owner, folder_url(shared["id"]), viewer, "viewer")
    assert (await get(client, viewer, folder_url(moving["id"]))).status_code == 200
    assert (await get(client, viewer, product_url(product["id"]))).status_code == 200

    moved = await client.patch(folder_url(moving["id"]), json={"parent_id": None}, headers=owner.headers)
    assert moved.status_code == 200
    assert (await get(client, viewer, folder_url(moving["id"]))).status_code == 404
    assert (await get(client, viewer, product_url(product["id"]))).status_code == 404


async def test_moving_a_product_out_of_a_shared_folder_hides_it(
    client: httpx.AsyncClient, accounts: Accounts
) -> None:
    owner, viewer = await accounts.create(), await accounts.create()
    shared = await create_folder(client, owner)
    product = await create_product(client, owner, folder_id=shared["id"])
    await share(client, owner, folder_url(shared["id"]), viewer, "viewer")
    assert (await get(client, viewer, product_url(product["id"]))).status_code == 200

    moved = await client.patch(product_url(product["id"]), json={"folder_id": None}, headers=owner.headers)
    assert moved.status_code == 200
    assert (await get(client, viewer, product_url(product["id"]))).status_code == 404


async def test_a_recursive_folder_delete_hides_its_products(
    client: httpx.AsyncClient, accounts: Accounts
) -> None:
    owner = await accounts.create()
    folder = await create_folder(client, owner)
    product = await create_product(client, owner, folder_id=folder["id"])
    assert (await get(client, owner, product_url(product["id"]))).status_code == 200

    deleted = await client.delete(
        folder_url(folder["id"]), params={"recursive": "true"}, headers=owner.headers
    )
    assert deleted.status_code == 204
    assert (await get(client, owner, product_url(product["id"]))).status_code == 404
    assert (await get(client, owner, folder_url(folder["id"]))).status_code == 404


async def test_a_demoted_admin_no_longer_sees_from_the_cache(
    client: httpx.AsyncClient, accounts: Accounts, admin: TestUser
) -> None:
    owner = await accounts.create()
    other_admin = await accounts.create(role=Role.ADMIN)
    product = await create_product(client, owner)
    url = product_url(product["id"])
    assert (await get(client, other_admin, url)).status_code == 200  # admins see all

    demoted = await client.patch(
        f"/api/v2/admin/users/{other_admin.id}", json={"role": "user"}, headers=admin.headers
    )
    assert demoted.status_code == 200
    assert (await get(client, other_admin, url)).status_code == 404


async def test_invalidate_by_key_and_pattern(
    client: httpx.AsyncClient, accounts: Accounts, admin: TestUser
) -> None:
    owner = await accounts.create()
    one, two = await create_product(client, owner), await create_product(client, owner)
    for product in (one, two):
        await get(client, owner, product_url(product["id"]))
    key = resource_key("product", one["id"], viewer=owner.id)

    by_key = await client.post(f"{CACHE}/invalidate", json={"keys": [key, key + "x"]}, headers=admin.headers)
    again = await client.post(f"{CACHE}/invalidate", json={"keys": [key]}, headers=admin.headers)
    by_pattern = await client.post(
        f"{CACHE}/invalidate", json={"pattern": f"product:{two['id']}:*"}, headers=admin.headers
    )
    everything = await client.post(f"{CACHE}/invalidate", json={"pattern": "*"}, headers=admin.headers)

    assert by_key.status_code == 200
    assert by_key.json()["data"]["invalidated"] == 1
    assert again.json()["data"]["invalidated"] == 0
    assert by_pattern.json()["data"]["invalidated"] == 1
    assert everything.json()["data"]["total_entries"] == 0
    assert (await stats(client, admin))["current_size_bytes"] == 0


async def test_warm_reloads_the_hottest_entries_as_their_viewers(
    client: httpx.AsyncClient, accounts: Accounts, admin: TestUser
) -> None:
    owner, viewer = await accounts.create(), await accounts.create()
    kept, revoked = await create_product(client, owner), await create_product(client, owner)
    await share(client, owner, product_url(revoked["id"]), viewer, "viewer")
    for _ in range(3):
        await get(client, owner, product_url(kept["id"]))
        await get(client, viewer, product_url(revoked["id"]))
    await client.delete(f"{product_url(revoked['id'])}/permissions/{viewer.id}", headers=owner.headers)
    await client.post(f"{CACHE}/invalidate", json={"pattern": "*"}, headers=admin.headers)

    warmed = await client.post(f"{CACHE}/warm", headers=admin.headers)
    before = await stats(client, admin)
    kept_read = await get(client, owner, product_url(kept["id"]))
    revoked_read = await get(client, viewer, product_url(revoked["id"]))
    after = await stats(client, admin)

    assert warmed.status_code == 200
    result = warmed.json()["data"]
    assert result["status"] == "completed"
    assert result["warmed_entries"] >= 1
    assert result["duration_ms"] >= 0
    assert "timestamp" in result
    assert kept_read.status_code == 200
    assert after["cache_hits"] == before["cache_hits"] + 1  # the kept entry was warm
    assert revoked_read.status_code == 404  # never refilled for a viewer who lost access


async def test_the_admin_endpoints_are_for_admins_and_bounded(
    client: httpx.AsyncClient, accounts: Accounts, admin: TestUser
) -> None:
    user = await accounts.create()
    for method, path in (("GET", "stats"), ("POST", "warm"), ("POST", "invalidate")):
        response = await client.request(
            method, f"{CACHE}/{path}", json={"pattern": "*"}, headers=user.headers
        )
        assert response.status_code == 403, path
    assert (await client.get(f"{CACHE}/stats")).status_code == 401

    nothing = await client.post(f"{CACHE}/invalidate", json={}, headers=admin.headers)
    unknown = await client.post(f"{CACHE}/invalidate", json={"key": "k"}, headers=admin.headers)
    too_many = await client.post(f"{CACHE}/invalidate", json={"keys": ["k"] * 1001}, headers=admin.headers)
    too_long = await client.post(f"{CACHE}/invalidate", json={"pattern": "p" * 513}, headers=admin.headers)
    spaced = await client.post(f"{CACHE}/invalidate", json={"keys": ["a b"]}, headers=admin.headers)
    assert nothing.status_code == 200
    assert nothing.json()["data"]["invalidated"] == 0
    for response in (unknown, too_many, too_long, spaced):
        assert response.status_code == 422
        assert response.json()["errors"][0]["code"] == "VALIDATION_ERROR"


async def test_invalidations_are_audited(client: httpx.AsyncClient, admin: TestUser) -> None:
    await client.post(f"{CACHE}/invalidate", json={"pattern": "folder:*"}, headers=admin.headers)
    logs = await client.get(
        "/api/v2/admin/audit-logs", params={"action": "cache.invalidated"}, headers=admin.headers
    )
    assert logs.status_code == 200
    assert logs.json()["data"][0]["detail"]["pattern"] == "folder:*"


async def test_an_unreachable_redis_cache_is_a_miss_not_an_error(
    client: httpx.AsyncClient, accounts: Accounts, app: FastAPI, backend_settings: dict[str, Any]
) -> None:
    # Made while Redis is up: with it down, logging in fails closed.
    owner = await accounts.create()
    product = await create_product(client, owner)
    signing_key = app.state.settings.signing_key  # so the owner's token is good there too
    dead = f"redis://127.0.0.1:{free_port()}/0"
    settings = make_settings(**{**backend_settings, "redis_url": dead, "secret_key": signing_key})
    async with serve_app(create_app(settings)) as down:
        reads = [await get(down, owner, product_url(product["id"])) for _ in range(3)]
        health = (await down.get("/health/deep")).json()["data"]["checks"]["cache"]

    assert [read.status_code for read in reads] == [200, 200, 200]
    assert all(read.json()["data"] == product for read in reads)
    assert health["status"] == "degraded"


async def test_a_disabled_cache_still_serves_reads(backend_settings: dict[str, Any]) -> None:
    app: FastAPI = create_app(make_settings(**{**backend_settings, "cache_enabled": False}))
    async with serve_app(app) as client:
        accounts = Accounts(app, client)
        owner, admin = await accounts.create(), await accounts.create(role=Role.ADMIN)
        product = await create_product(client, owner)
        read = await get(client, owner, product_url(product["id"]))
        statistics = await stats(client, admin)
        warmed = await client.post(f"{CACHE}/warm", headers=admin.headers)

    assert read.json()["data"] == product
    assert statistics["backend"] == "disabled"
    assert statistics["total_requests"] == 0
    assert warmed.json()["data"]["status"] == "disabled"
