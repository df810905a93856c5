"""Folders and products for tests, made through the HTTP API (as a client would)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.identity import TestUser

PRODUCTS = "/api/v2/products"
FOLDERS = "/api/v2/folders"


def product_url(product_id: uuid.UUID | str) -> str:
    return f"{PRODUCTS}/{product_id}"


def folder_url(folder_id: uuid.UUID | str) -> str:
    return f"{FOLDERS}/{folder_id}"


def single_error(response: httpx.Response) -> dict[str, Any]:
    errors: list[dict[str, Any]] = response.json()["errors"]
    assert len(errors) == 1, errors
    return errors[0]


async def create_product(client: httpx.AsyncClient, owner: TestUser, **fields: Any) -> dict[str, Any]:
    body = {"name": "Widget", "price": "9.99", "currency": "EUR", **fields}
    response = await client.post(PRODUCTS, json=body, headers=owner.headers)
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


async def create_folder(client: httpx.AsyncClient, owner: TestUser, **fields: Any) -> dict[str, Any]:
    body = {"name": "Folder", **fields}
    response = await client.post(FOLDERS, json=body, headers=owner.headers)
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


async def share(
    client: httpx.AsyncClient, owner: TestUser, url: str, grantee: TestUser, level: str
) -> httpx.Response:
    """POST ``{url}/permissions`` (url: a folder or product URL); asserts it worked."""
    response = await client.post(
        f"{url}/permissions", json={"user_id": str(grantee.id), "level": level}, headers=owner.headers
    )
    assert response.status_code in (200, 201), response.text
    return response


async def listed_ids(client: httpx.AsyncClient, user: TestUser, url: str, **params: Any) -> set[str]:
    """The ids a list shows ``user`` on its first page (callers filter it down to a few)."""
    response = await client.get(url, params={"per_page": 100, **params}, headers=user.headers)
    assert response.status_code == 200, response.text
    return {item["id"] for item in response.json()["data"]}
