"""Who may call the admin routes: admins everything; moderators the audit log only."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from keel.users.models import Role
from tests.admin.helpers import AUDIT, STATS, USERS, single_error, user_url
from tests.identity import Accounts, TestUser

# (method, path template, JSON body); {target} is an existing account's id.
Route = tuple[str, str, dict[str, Any] | None]
ROUTES: list[Route] = [
    ("GET", USERS, None),
    ("GET", user_url("{target}"), None),
    ("PATCH", user_url("{target}"), {}),
    ("GET", AUDIT, None),
    ("GET", STATS, None),
]
ROUTE_IDS = ["list-users", "get-user", "patch-user", "audit-logs", "stats"]


@pytest.fixture(scope="module")
async def people(accounts: Accounts) -> dict[Role, TestUser]:
    return {role: await accounts.create(role=role) for role in (Role.ADMIN, Role.MODERATOR, Role.USER)}


async def call(
    client: httpx.AsyncClient,
    route: Route,
    target: TestUser,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    method, path, body = route
    return await client.request(method, path.format(target=target.id), json=body, headers=headers)


@pytest.mark.parametrize("route", ROUTES, ids=ROUTE_IDS)
async def test_anonymous_gets_401(
    client: httpx.AsyncClient, people: dict[Role, TestUser], route: Route
) -> None:
    response = await call(client, route, people[Role.USER])
    assert response.status_code == 401
    assert single_error(response)["code"] == "AUTHENTICATION_REQUIRED"


@pytest.mark.parametrize("route", ROUTES, ids=ROUTE_IDS)
async def test_a_user_gets_403(client: httpx.AsyncClient, people: dict[Role, TestUser], route: Route) -> None:
    response = await call(client, route, people[Role.USER], people[Role.USER].headers)
    assert response.status_code == 403
    assert single_error(response)["code"] == "FORBIDDEN"


@pytest.mark.parametrize("route", ROUTES, ids=ROUTE_IDS)
async def test_a_moderator_may_read_the_audit_log_only(
    client: httpx.AsyncClient, people: dict[Role, TestUser], route: Route
) -> None:
    response = await call(client, route, people[Role.USER], people[Role.MODERATOR].headers)
    if route[1] == AUDIT:
        assert response.status_code == 200, response.text
    else:
        assert response.status_code == 403
        assert single_error(response)["code"] == "FORBIDDEN"


@pytest.mark.parametrize("route", ROUTES, ids=ROUTE_IDS)
async def test_an_admin_may_call_every_route(
    client: httpx.AsyncClient, people: dict[Role, TestUser], route: Route
) -> None:
    response = await call(client, route, people[Role.USER], people[Role.ADMIN].headers)
    assert response.status_code == 200, response.text
    assert response.json()["success"] is True


async def test_the_routes_are_documented_with_a_summary(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    operations = [
        paths[USERS]["get"],
        paths[user_url("{user_id}")]["get"],
        paths[user_url("{user_id}")]["patch"],
        paths[AUDIT]["get"],
        paths[STATS]["get"],
    ]
    assert all(operation["summary"] and operation["tags"] == ["admin"] for operation in operations)
    parameters = {parameter["name"] for parameter in paths[AUDIT]["get"]["parameters"]}
    assert parameters == {"user_id", "action", "resource_type", "from", "to", "page", "per_page"}


async def admin_key(client: httpx.AsyncClient, admin: TestUser, scopes: list[str]) -> dict[str, str]:
    response = await client.post(
        "/api/v2/api-keys", headers=admin.headers, json={"name": "k", "scopes": scopes}
    )
    assert response.status_code == 201, response.text
    return {"X-API-Key": response.json()["data"]["secret"]}


@pytest.mark.parametrize("route", ROUTES, ids=ROUTE_IDS)
async def test_an_admins_key_without_the_scope_gets_403(
    client: httpx.AsyncClient, people: dict[Role, TestUser], route: Route
) -> None:
    headers = await admin_key(client, people[Role.ADMIN], ["profile:read", "products:read"])
    response = await call(client, route, people[Role.USER], headers)
    assert response.status_code == 403
    assert single_error(response)["code"] == "FORBIDDEN"


@pytest.mark.parametrize("route", ROUTES, ids=ROUTE_IDS)
async def test_an_admins_key_with_the_scopes_may_call_the_route(
    client: httpx.AsyncClient, people: dict[Role, TestUser], route: Route
) -> None:
    headers = await admin_key(client, people[Role.ADMIN], ["users:admin", "audit:read"])
    response = await call(client, route, people[Role.USER], headers)
    assert response.status_code == 200, response.text
