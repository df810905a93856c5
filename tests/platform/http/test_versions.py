"""/api/v1 is the v2 handlers behind one translation layer."""

from __future__ import annotations

import uuid
from email.utils import parsedate_to_datetime

import httpx
import pytest

from keel.platform.http.versions import V1_API_VERSION
from tests.platform.http.conftest import SECRET_IN_EXCEPTION

V1_ACCEPT = {"Accept": "application/vnd.keel.v1+json"}


def assert_v1_headers(response: httpx.Response, v2_path: str) -> None:
    assert response.headers["api-version"] == V1_API_VERSION
    assert response.headers["deprecation"].startswith("@")
    assert parsedate_to_datetime(response.headers["sunset"]).year >= 2027
    assert response.headers["link"] == f'<{v2_path}>; rel="successor-version"'
    assert response.headers["x-request-id"]


async def test_v2_path_serves_the_envelope(client: httpx.AsyncClient) -> None:
    body = (await client.post("/api/v2/probe/items", json={"name": "a", "price": "2"})).json()
    assert body["success"] is True
    assert body["data"]["name"] == "a"


async def test_v1_resource_is_the_bare_object(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/probe/items", json={"name": "a", "price": "2"})
    assert response.status_code == 201
    assert response.json() == {"name": "a", "price": "2", "tags": []}
    assert int(response.headers["content-length"]) == len(response.content)
    assert_v1_headers(response, "/api/v2/probe/items")


async def test_v1_list_is_items_and_total(client: httpx.AsyncClient) -> None:
    body = (await client.get("/api/v1/probe/items")).json()
    assert body == {
        "items": [{"name": "item-0", "price": "0", "tags": []}, {"name": "item-1", "price": "1", "tags": []}],
        "total": 7,
    }


async def test_v1_error_is_detail_code_and_timestamp(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/probe/nothing-here")
    assert response.status_code == 404
    body = response.json()
    assert set(body) == {"detail", "error_code", "timestamp"}
    assert body["error_code"] == "NOT_FOUND"


async def test_v1_validation_error_names_every_field(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/probe/items", json={"name": "", "price": "-1"})
    assert response.status_code == 422
    body = response.json()
    assert body["error_code"] == "VALIDATION_ERROR"
    assert "name:" in body["detail"]
    assert "price:" in body["detail"]


async def test_v1_crash_reveals_nothing(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/probe/boom")
    assert response.status_code == 500
    assert response.json()["error_code"] == "INTERNAL_ERROR"
    assert SECRET_IN_EXCEPTION not in response.text


async def test_v1_head_keeps_headers_without_a_body(client: httpx.AsyncClient) -> None:
    response = await client.head("/api/v1/probe/items")
    assert response.status_code in (200, 405)
    assert response.content == b""
    assert response.headers["api-version"] == V1_API_VERSION


async def test_vendor_accept_on_unprefixed_path_selects_the_version(client: httpx.AsyncClient) -> None:
    v1 = await client.get("/probe/items", headers=V1_ACCEPT)
    assert v1.json()["total"] == 7
    v2 = await client.get("/probe/items", headers={"Accept": "application/vnd.keel.v2+json"})
    assert v2.json()["success"] is True


async def test_unprefixed_path_without_vendor_accept_is_not_rewritten(client: httpx.AsyncClient) -> None:
    # /orders exists in no version; without the vendor type it is not mapped to /api/v2.
    response = await client.get("/orders")
    assert response.status_code == 404
    assert response.json()["success"] is False


@pytest.mark.parametrize("path", ["/health", "/metrics", "/openapi.json"])
async def test_service_paths_ignore_the_vendor_accept(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path, headers=V1_ACCEPT)
    assert response.status_code == 200
    assert "deprecation" not in response.headers


async def test_each_version_has_its_schema(client: httpx.AsyncClient) -> None:
    v2 = (await client.get("/api/v2/openapi.json")).json()
    assert v2 == (await client.get("/openapi.json")).json()
    v1 = (await client.get("/api/v1/openapi.json")).json()
    assert all(path.startswith("/api/v1/") for path in v1["paths"])
    operation = v1["paths"]["/api/v1/probe/items"]["get"]
    assert operation["deprecated"] is True
    ok_schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert set(ok_schema["properties"]) == {"items", "total"}
    error_schema = operation["responses"]["default"]["content"]["application/json"]["schema"]
    assert error_schema == {"$ref": "#/components/schemas/V1Error"}


async def test_v1_location_and_link_headers_point_at_v1(client: httpx.AsyncClient) -> None:
    register = await client.post(
        "/api/v1/auth/register",
        json={
            "email": f"v1-{uuid.uuid4().hex[:8]}@example.com",
            "password": "Correct-Horse-Battery-42",
            "full_name": "V",
        },
    )
    assert register.status_code == 201
    assert register.headers["location"] == "/api/v1/auth/me"
    # The successor link, added by the version layer itself, still names v2.
    assert register.headers["link"].startswith("</api/v2/auth/register>")
