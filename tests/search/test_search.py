"""Full-text search over document chunks, on both backends: accents and case folded,
what is typed never taken as syntax, only what the caller may see, and deletions gone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from keel.settings import Settings
from keel.users.models import Role
from tests.catalog import create_folder, create_product, folder_url, product_url, share
from tests.conftest import make_settings
from tests.identity import Accounts, TestUser

SEARCH = "/api/v2/search"
DOCUMENTS = "/api/v2/documents"


@pytest.fixture(scope="module")
def settings(backend_settings: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Settings:
    storage: Path = tmp_path_factory.mktemp("storage")
    return make_settings(
        **backend_settings, storage_dir=storage, document_chunk_size=200, document_chunk_overlap=20
    )


async def ready_document(
    client: httpx.AsyncClient, user: TestUser, text: str, **fields: str
) -> dict[str, Any]:
    response = await client.post(
        DOCUMENTS,
        files={"file": ("notes.txt", text.encode(), "text/plain")},
        data={"async_processing": "false", **fields},
        headers=user.headers,
    )
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()["data"]
    assert data["status"] == "ready"
    return data


async def hits(client: httpx.AsyncClient, user: TestUser, q: str, **params: Any) -> list[dict[str, Any]]:
    response = await client.get(SEARCH, params={"q": q, **params}, headers=user.headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["data"]
    return items


async def test_accents_and_case_are_folded_and_matches_are_marked(
    client: httpx.AsyncClient, accounts: Accounts
) -> None:
    user = await accounts.create()
    document = await ready_document(client, user, "Le Café Mürren serves crème brûlée every morning.")

    for query in ("cafe", "CAFÉ", "murren", "creme brulee"):
        found = await hits(client, user, query)
        assert [hit["document_id"] for hit in found] == [document["id"]], query
    (hit,) = await hits(client, user, "cafe")
    assert "**Café**" in hit["snippet"]
    assert hit["chunk_index"] == 0
    assert hit["document_title"] == document["title"]
    assert hit["score"] > 0


async def test_every_word_must_appear_and_the_best_match_comes_first(
    client: httpx.AsyncClient, accounts: Accounts
) -> None:
    user = await accounts.create()
    strong = await ready_document(client, user, "zephyr zephyr zephyr quartz. zephyr quartz again.")
    weak = await ready_document(
        client, user, "one zephyr among many other words, and quartz once, far apart."
    )
    await ready_document(client, user, "zephyr alone here.")

    found = await hits(client, user, "zephyr quartz")
    assert [hit["document_id"] for hit in found] == [strong["id"], weak["id"]]
    assert found[0]["score"] >= found[1]["score"]


@pytest.mark.parametrize("query", ['AND ( "', "NEAR(a b)", "text:secret", '"unbalanced', "*", "-", "a OR"])
async def test_what_is_typed_is_never_syntax(
    client: httpx.AsyncClient, accounts: Accounts, query: str
) -> None:
    user = await accounts.create()
    response = await client.get(SEARCH, params={"q": query}, headers=user.headers)
    assert response.status_code == 200, response.text
    assert isinstance(response.json()["data"], list)


async def test_only_what_the_caller_may_see(client: httpx.AsyncClient, accounts: Accounts) -> None:
    owner, viewer, stranger = await accounts.create(), await accounts.create(), await accounts.create()
    product = await create_product(client, owner)
    attached = await ready_document(client, owner, "The xylophone manual.", product_id=product["id"])
    private = await ready_document(client, owner, "A private xylophone diary.")
    await share(client, owner, product_url(product["id"]), viewer, "viewer")

    assert {hit["document_id"] for hit in await hits(client, owner, "xylophone")} == {
        attached["id"],
        private["id"],
    }
    assert [hit["document_id"] for hit in await hits(client, viewer, "xylophone")] == [attached["id"]]
    assert await hits(client, stranger, "xylophone") == []

    revoked = await client.delete(
        f"{product_url(product['id'])}/permissions/{viewer.id}", headers=owner.headers
    )
    assert revoked.status_code == 204
    assert await hits(client, viewer, "xylophone") == []


async def test_deleted_documents_leave_the_results(client: httpx.AsyncClient, accounts: Accounts) -> None:
    user = await accounts.create()
    document = await ready_document(client, user, "Ephemeral quokka notes.")
    assert len(await hits(client, user, "quokka")) == 1
    deleted = await client.delete(f"{DOCUMENTS}/{document['id']}", headers=user.headers)
    assert deleted.status_code == 204
    assert await hits(client, user, "quokka") == []


async def test_results_are_paged(client: httpx.AsyncClient, accounts: Accounts) -> None:
    user = await accounts.create()
    for n in range(3):
        await ready_document(client, user, f"Pangolin report number {n}.")
    response = await client.get(SEARCH, params={"q": "pangolin", "per_page": 2}, headers=user.headers)
    body = response.json()
    assert len(body["data"]) == 2
    assert body["meta"]["pagination"]["total"] == 3
    second = await hits(client, user, "pangolin", per_page=2, page=2)
    assert len(second) == 1


@pytest.mark.parametrize("params", [{}, {"q": ""}, {"q": "x" * 201}, {"q": "ok", "type": "images"}])
async def test_bad_searches_are_422(
    client: httpx.AsyncClient, accounts: Accounts, params: dict[str, str]
) -> None:
    user = await accounts.create()
    response = await client.get(SEARCH, params=params, headers=user.headers)
    assert response.status_code == 422


async def test_search_needs_credentials(client: httpx.AsyncClient) -> None:
    assert (await client.get(SEARCH, params={"q": "x"})).status_code == 401


async def product_hits(client: httpx.AsyncClient, user: TestUser, q: str) -> list[str]:
    found = await hits(client, user, q, type="products")
    assert all(hit["type"] == "product" for hit in found)
    return [hit["product_id"] for hit in found]


async def test_products_are_found_by_name_and_description_accents_folded(
    client: httpx.AsyncClient, accounts: Accounts
) -> None:
    user = await accounts.create()
    named = await create_product(client, user, name="Crème Brûlée Torch", description="For kitchens.")
    described = await create_product(
        client, user, name="Blowtorch", description="Caramelises a crème brûlée in seconds."
    )
    await create_product(client, user, name="Unrelated", description="Nothing to see.")

    # A match in the name outranks one in the description.
    assert await product_hits(client, user, "creme brulee") == [named["id"], described["id"]]
    (hit,) = await hits(client, user, "CARAMELISES", type="products")
    assert hit["name"] == "Blowtorch"
    assert "**Caramelises**" in hit["snippet"]
    assert hit["score"] > 0


async def test_product_search_follows_changes_and_soft_deletes(
    client: httpx.AsyncClient, accounts: Accounts
) -> None:
    user = await accounts.create()
    admin = await accounts.create(role=Role.ADMIN)
    product = await create_product(client, user, name="Okapi lamp")
    assert await product_hits(client, user, "okapi") == [product["id"]]

    renamed = await client.patch(
        product_url(product["id"]), json={"name": "Narwhal lamp"}, headers=user.headers
    )
    assert renamed.status_code == 200, renamed.text
    assert await product_hits(client, user, "okapi") == []
    assert await product_hits(client, user, "narwhal") == [product["id"]]

    assert (await client.delete(product_url(product["id"]), headers=user.headers)).status_code == 204
    assert await product_hits(client, user, "narwhal") == []
    restored = await client.post(f"{product_url(product['id'])}/restore", headers=admin.headers)
    assert restored.status_code == 200, restored.text
    assert await product_hits(client, user, "narwhal") == [product["id"]]


async def test_product_search_shows_only_what_the_caller_may_see(
    client: httpx.AsyncClient, accounts: Accounts
) -> None:
    owner, viewer, stranger = await accounts.create(), await accounts.create(), await accounts.create()
    folder = await create_folder(client, owner)
    shared = await create_product(client, owner, name="Wombat shared", folder_id=folder["id"])
    private = await create_product(client, owner, name="Wombat private")
    await share(client, owner, folder_url(folder["id"]), viewer, "viewer")

    assert set(await product_hits(client, owner, "wombat")) == {shared["id"], private["id"]}
    assert await product_hits(client, viewer, "wombat") == [shared["id"]]
    assert await product_hits(client, stranger, "wombat") == []


@pytest.mark.parametrize("query", ['AND ( "', "name:secret", "a OR", "*"])
async def test_product_search_never_takes_syntax(
    client: httpx.AsyncClient, accounts: Accounts, query: str
) -> None:
    user = await accounts.create()
    response = await client.get(SEARCH, params={"q": query, "type": "products"}, headers=user.headers)
    assert response.status_code == 200, response.text


async def test_each_type_needs_its_own_permission(client: httpx.AsyncClient, accounts: Accounts) -> None:
    user = await accounts.create()
    await create_product(client, user, name="Scoped quetzal")
    created = await client.post(
        "/api/v2/api-keys", json={"name": "docs only", "scopes": ["documents:read"]}, headers=user.headers
    )
    assert created.status_code == 201, created.text
    key = {"X-API-Key": created.json()["data"]["secret"]}

    refused = await client.get(SEARCH, params={"q": "quetzal", "type": "products"}, headers=key)
    assert refused.status_code == 403
    assert refused.json()["errors"][0]["code"] == "FORBIDDEN"
    allowed = await client.get(SEARCH, params={"q": "quetzal", "type": "chunks"}, headers=key)
    assert allowed.status_code == 200
