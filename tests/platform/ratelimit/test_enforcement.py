"""Rate limits as clients see them, on both backends (PostgreSQL runs them on Redis, keys
under the run's prefix): exact budgets per policy, the headers on every response, an
honest Retry-After, one limiter round trip per request, and Redis outages."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from keel.app import create_app
from keel.platform.resources import Resources
from keel.users.models import User
from tests import services
from tests.conftest import free_port, make_settings, serve_app
from tests.identity import PASSWORD, unique_email

AUTH = "/api/v2/auth"
PRODUCTS = "/api/v2/products"
PROXY = "10.0.0.1"

Served = Callable[..., Any]


@pytest.fixture
def limited(backend_settings: dict[str, Any]) -> Served:
    """``async with limited(rate_limit_user_per_minute=3) as (app, client):`` — an app with
    its own Redis namespace, so no other test's counts are seen."""

    @asynccontextmanager
    async def factory(**overrides: Any) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
        prefix = f"{services.REDIS_PREFIX}{uuid.uuid4().hex[:8]}:"
        settings = make_settings(**{**backend_settings, "redis_key_prefix": prefix, **overrides})
        app = create_app(settings)
        async with serve_app(app) as client:
            yield app, client

    return factory


def via(ip: str) -> dict[str, str]:
    # The test client connects from 127.0.0.1; with it trusted, the client is ``ip``.
    return {"X-Forwarded-For": ip}


def assert_rate_limited(response: httpx.Response) -> None:
    assert response.status_code == 429
    body = response.json()
    assert body["success"] is False
    assert [error["code"] for error in body["errors"]] == ["RATE_LIMITED"]
    assert int(response.headers["Retry-After"]) >= 1
    assert response.headers["X-RateLimit-Remaining"] == "0"


async def register(client: httpx.AsyncClient, email: str, **headers: str) -> httpx.Response:
    body = {"email": email, "password": PASSWORD, "full_name": "Rate Limited"}
    return await client.post(f"{AUTH}/register", json=body, headers=headers)


async def signed_up(
    client: httpx.AsyncClient,
    email: str | None = None,
    *,
    app: FastAPI | None = None,
    plan: str | None = None,
) -> dict[str, str]:
    """A registered, logged-in user's headers; on ``plan`` when given (``app`` needed)."""
    email = email or unique_email()
    assert (await register(client, email)).status_code == 201
    if plan is not None:
        assert app is not None
        await set_plan(app, email, plan)
    response = await client.post(f"{AUTH}/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200
    return {"Authorization": f"Bearer {response.json()['data']['access_token']}"}


async def set_plan(app: FastAPI, email: str, plan: str) -> None:
    resources: Resources = app.state.resources
    async with resources.db.writer() as session:
        user = (await session.execute(select(User).where(User.email == email))).scalar_one()
        user.plan = plan
        await session.commit()


async def create_product(client: httpx.AsyncClient, headers: dict[str, str], **extra: str) -> httpx.Response:
    body = {"name": f"quota {uuid.uuid4().hex[:6]}", "price": "1.00", "currency": "EUR"}
    return await client.post(PRODUCTS, json=body, headers={**headers, **extra})


def assert_quota_exceeded(response: httpx.Response, *, retry_after_at_least: int) -> None:
    assert response.status_code == 429
    assert [error["code"] for error in response.json()["errors"]] == ["QUOTA_EXCEEDED"]
    assert int(response.headers["Retry-After"]) >= retry_after_at_least


async def test_anonymous_tier_allows_exactly_its_budget_per_ip(limited: Served) -> None:
    async with limited(rate_limit_anonymous_per_minute=3) as (_app, client):
        statuses = [(await client.get(PRODUCTS)).status_code for _ in range(3)]
        refused = await client.get(PRODUCTS)

    assert 429 not in statuses
    assert_rate_limited(refused)
    assert '"anonymous";q=3;w=60' in refused.headers["RateLimit-Policy"]


async def test_remaining_decrements_by_one_and_errors_carry_the_headers(limited: Served) -> None:
    async with limited(rate_limit_anonymous_per_minute=5) as (_app, client):
        responses = [await client.get(PRODUCTS) for _ in range(3)]

    assert [r.status_code for r in responses] == [401, 401, 401]
    assert [r.headers["X-RateLimit-Remaining"] for r in responses] == ["4", "3", "2"]
    assert all(r.headers["X-RateLimit-Limit"] == "5" for r in responses)
    assert responses[-1].headers["RateLimit-Policy"] == '"anonymous";q=5;w=60'
    assert responses[-1].headers["RateLimit"].startswith('"anonymous";r=2;t=')
    assert int(responses[-1].headers["X-RateLimit-Reset"]) > 0


async def test_both_api_versions_share_one_budget(limited: Served) -> None:
    async with limited(rate_limit_anonymous_per_minute=2) as (_app, client):
        await client.get(PRODUCTS)
        await client.get("/api/v1/products")
        refused = await client.get("/api/v1/products")

    assert refused.status_code == 429


async def test_probes_and_docs_are_never_limited(limited: Served) -> None:
    async with limited(rate_limit_anonymous_per_minute=1) as (_app, client):
        responses = [await client.get(path) for path in ("/health", "/health", "/openapi.json", "/metrics")]

    assert [r.status_code for r in responses] == [200, 200, 200, 200]
    assert all("X-RateLimit-Limit" not in r.headers for r in responses)


async def test_disabled_limits_add_nothing(limited: Served) -> None:
    async with limited(rate_limit_enabled=False, rate_limit_anonymous_per_minute=1) as (_app, client):
        responses = [await client.get(PRODUCTS) for _ in range(3)]

    assert [r.status_code for r in responses] == [401, 401, 401]
    assert all("X-RateLimit-Limit" not in r.headers and "RateLimit" not in r.headers for r in responses)


async def test_user_tier_counts_the_user_and_their_api_keys_together(limited: Served) -> None:
    async with limited(rate_limit_user_per_minute=4) as (_app, client):
        session = await signed_up(client)
        created = await client.post(
            "/api/v2/api-keys", json={"name": "ci", "scopes": ["profile:read"]}, headers=session
        )
        api_key = {"X-API-Key": created.json()["data"]["secret"]}
        allowed = [
            await client.get(f"{AUTH}/me", headers=api_key),
            await client.get(f"{AUTH}/me", headers=session),
            await client.get(f"{AUTH}/me", headers=api_key),
        ]
        refused = await client.get(f"{AUTH}/me", headers=session)
        anonymous = await client.get(PRODUCTS)

    assert created.status_code == 201
    assert [r.status_code for r in allowed] == [200, 200, 200]
    assert allowed[-1].headers["RateLimit-Policy"] == '"user";q=4;w=60'
    assert_rate_limited(refused)
    assert anonymous.status_code == 401  # the IP's anonymous budget is its own


async def test_admins_get_the_admin_tier(limited: Served) -> None:
    admins = {"admin_email_domains": ["admin.example"], "rate_limit_admin_per_minute": 7}
    async with limited(**admins) as (_app, client):
        admin = await signed_up(client, unique_email().replace("example.com", "admin.example"))
        response = await client.get(f"{AUTH}/me", headers=admin)

    assert response.status_code == 200
    assert response.headers["RateLimit-Policy"] == '"admin";q=7;w=60'


async def test_the_user_limit_is_multiplied_by_the_plan(limited: Served) -> None:
    figures = {
        "rate_limit_user_per_minute": 2,
        "rate_limit_pro_multiplier": 5,
        "rate_limit_enterprise_multiplier": 0.5,
    }
    async with limited(**figures) as (app, client):
        free = await signed_up(client)
        pro = await signed_up(client, app=app, plan="pro")
        enterprise = await signed_up(client, app=app, plan="enterprise")
        pro_statuses = [(await client.get(f"{AUTH}/me", headers=pro)).status_code for _ in range(10)]
        pro_refused = await client.get(f"{AUTH}/me", headers=pro)
        free_statuses = [(await client.get(f"{AUTH}/me", headers=free)).status_code for _ in range(3)]
        enterprise_first = await client.get(f"{AUTH}/me", headers=enterprise)
        enterprise_refused = await client.get(f"{AUTH}/me", headers=enterprise)

    assert pro_statuses == [200] * 10
    assert_rate_limited(pro_refused)
    assert pro_refused.headers["RateLimit-Policy"] == '"user";q=10;w=60'
    assert free_statuses == [200, 200, 429]
    # A multiplier below 1 lowers the limit, never below one request.
    assert enterprise_first.headers["RateLimit-Policy"] == '"user";q=1;w=60'
    assert_rate_limited(enterprise_refused)


async def test_free_plan_creates_its_quota_then_quota_exceeded(limited: Served) -> None:
    async with limited(quota_products_free=1, quota_products_free_period_seconds=7200) as (_app, client):
        user = await signed_up(client)
        first = await create_product(client, user)
        second = await create_product(client, user)
        listed = await client.get(PRODUCTS, headers=user)

    assert first.status_code == 201
    assert '"products.create";q=1;w=7200' in first.headers["RateLimit-Policy"]
    assert first.headers["X-RateLimit-Remaining"] == "0"
    assert_quota_exceeded(second, retry_after_at_least=7190)
    assert "quota" in second.json()["errors"][0]["message"]
    assert listed.json()["meta"]["pagination"]["total"] == 1
    # Other requests are not held back by the quota.
    assert listed.status_code == 200
    assert "products.create" not in listed.headers["RateLimit-Policy"]


async def test_the_quota_counts_creations_not_attempts(limited: Served) -> None:
    async with limited(quota_products_free=2) as (_app, client):
        user = await signed_up(client)
        invalid = await client.post(PRODUCTS, json={"name": ""}, headers=user)
        retried = {**user, "Idempotency-Key": "quota-one"}
        body = {"name": "once", "price": "1.00", "currency": "EUR"}
        first = await client.post(PRODUCTS, json=body, headers=retried)
        replayed = await client.post(PRODUCTS, json=body, headers=retried)
        second = await create_product(client, user)
        third = await create_product(client, user)

    assert invalid.status_code == 422
    assert first.status_code == 201
    assert replayed.status_code == 201
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert second.status_code == 201
    assert_quota_exceeded(third, retry_after_at_least=1)


async def test_quotas_follow_the_plan_and_spare_admins(limited: Served) -> None:
    figures = {
        "quota_products_free": 1,
        "quota_products_pro": 2,
        "quota_products_pro_period_seconds": 3600,
        "admin_email_domains": ["admin.example"],
    }
    async with limited(**figures) as (app, client):
        pro = await signed_up(client, app=app, plan="pro")
        enterprise = await signed_up(client, app=app, plan="enterprise")
        admin = await signed_up(client, unique_email().replace("example.com", "admin.example"))
        pro_statuses = [(await create_product(client, pro)).status_code for _ in range(3)]
        enterprise_statuses = [(await create_product(client, enterprise)).status_code for _ in range(4)]
        admin_statuses = [(await create_product(client, admin)).status_code for _ in range(3)]

    assert pro_statuses == [201, 201, 429]
    assert enterprise_statuses == [201] * 4  # 0: no quota
    assert admin_statuses == [201] * 3  # admins (on the free plan) have none


async def test_concurrent_creations_cannot_overrun_the_quota(limited: Served) -> None:
    async with limited(quota_products_free=1) as (_app, client):
        user = await signed_up(client)
        responses = await asyncio.gather(*(create_product(client, user) for _ in range(8)))

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [201] + [429] * 7


async def test_login_is_limited_per_ip(limited: Served) -> None:
    async with limited(rate_limit_login_per_minute=3) as (_app, client):
        attempts = [
            await client.post(f"{AUTH}/login", json={"email": unique_email(), "password": "wrong-password-1"})
            for _ in range(3)
        ]
        refused = await client.post(
            f"{AUTH}/login", json={"email": unique_email(), "password": "wrong-password-1"}
        )

    assert [r.status_code for r in attempts] == [401, 401, 401]
    assert_rate_limited(refused)
    assert '"login-ip";r=0' in refused.headers["RateLimit"]


async def test_login_is_limited_per_account_across_ips(limited: Served) -> None:
    email = unique_email()
    async with limited(rate_limit_login_per_minute=3, trusted_proxies=["127.0.0.1/32"]) as (_app, client):
        assert (await register(client, email, **via("198.51.100.1"))).status_code == 201
        attempts = [
            await client.post(
                f"{AUTH}/login",
                json={"email": email, "password": PASSWORD},
                headers=via(f"198.51.100.{10 + i}"),
            )
            for i in range(3)
        ]
        # The same account in another case, from yet another address, via the OAuth2 form.
        refused = await client.post(
            f"{AUTH}/token",
            data={"username": email.upper(), "password": PASSWORD},
            headers=via("203.0.113.99"),
        )
        other_account = await client.post(
            f"{AUTH}/login", json={"email": unique_email(), "password": PASSWORD}, headers=via("203.0.113.99")
        )

    assert [r.status_code for r in attempts] == [200, 200, 200]
    assert_rate_limited(refused)
    assert '"login-account";r=0' in refused.headers["RateLimit"]
    assert other_account.status_code == 401


async def test_register_is_limited_per_ip(limited: Served) -> None:
    async with limited(rate_limit_register_per_minute=2) as (_app, client):
        created = [await register(client, unique_email()) for _ in range(2)]
        refused = await register(client, unique_email())

    assert [r.status_code for r in created] == [201, 201]
    assert_rate_limited(refused)


async def test_rotating_the_leftmost_forwarded_address_does_not_escape_the_limit(limited: Served) -> None:
    async with limited(rate_limit_anonymous_per_minute=3, trusted_proxies=["127.0.0.1/32"]) as (_app, client):
        responses = [await client.get(PRODUCTS, headers=via(f"192.0.2.{i}, 198.51.100.7")) for i in range(4)]
        elsewhere = await client.get(PRODUCTS, headers=via("198.51.100.8"))

    assert [r.status_code for r in responses] == [401, 401, 401, 429]
    assert elsewhere.status_code == 401


async def test_retry_after_is_honest(limited: Served) -> None:
    async with limited(rate_limit_anonymous_per_minute=2, rate_limit_period_seconds=2) as (_app, client):
        await client.get(PRODUCTS)
        await client.get(PRODUCTS)
        refused = await client.get(PRODUCTS)
        await asyncio.sleep(int(refused.headers["Retry-After"]))
        after_waiting = await client.get(PRODUCTS)

    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) <= 2
    assert after_waiting.status_code == 401


async def test_each_request_is_one_evalsha(limited: Served, redis_url: str) -> None:
    # Redis on both backends here (SQLite + Redis is a valid deployment too): the
    # memory limiter makes no round trip to count.
    async with limited(rate_limit_login_per_minute=100, redis_url=redis_url) as (app, client):
        resources: Resources = app.state.resources
        redis = resources.redis
        assert redis is not None
        sent: list[str] = []
        execute = redis.execute_command

        async def counting(*args: Any, **options: Any) -> Any:
            sent.append(str(args[0]).upper())
            return await execute(*args, **options)  # type: ignore[no-untyped-call]

        redis.execute_command = counting  # type: ignore[method-assign]
        await client.get(PRODUCTS)  # the first call may load the script
        for request in (
            client.get(PRODUCTS),
            client.post(f"{AUTH}/login", json={"email": unique_email(), "password": PASSWORD}),
            client.get("/health"),
        ):
            sent.clear()
            response = await request
            assert "X-RateLimit-Limit" in response.headers or response.request.url.path == "/health"
            assert sent == ([] if response.request.url.path == "/health" else ["EVALSHA"])


async def test_without_redis_login_fails_closed_and_other_routes_fall_back(limited: Served) -> None:
    closed = f"redis://127.0.0.1:{free_port()}/0"
    async with limited(redis_url=closed, redis_timeout_ms=200) as (app, client):
        login = await client.post(f"{AUTH}/login", json={"email": unique_email(), "password": PASSWORD})
        register_response = await register(client, unique_email())
        general = await client.get(PRODUCTS)
        fallbacks = app.state.resources.metrics.registry.get_sample_value("keel_ratelimit_fallbacks_total")

    for refused in (login, register_response):
        assert refused.status_code == 503
        assert [error["code"] for error in refused.json()["errors"]] == ["SERVICE_UNAVAILABLE"]
        assert int(refused.headers["Retry-After"]) >= 1
    assert general.status_code == 401
    assert general.headers["X-RateLimit-Limit"] == "1000000"
    assert fallbacks == 1


async def test_openapi_documents_the_429s_and_the_fail_closed_503s(limited: Served) -> None:
    async with limited() as (_app, client):
        schema = (await client.get("/openapi.json")).json()

    paths = schema["paths"]
    create = paths["/api/v2/products"]["post"]["responses"]
    assert "QUOTA_EXCEEDED" in create["429"]["description"]
    assert {"Retry-After", "X-RateLimit-Remaining", "RateLimit"} <= set(create["429"]["headers"])
    assert "QUOTA_EXCEEDED" not in paths["/api/v2/products"]["get"]["responses"]["429"]["description"]
    assert "503" not in create
    for route in ("/api/v2/auth/login", "/api/v2/auth/register", "/api/v2/auth/token"):
        assert {"429", "503"} <= set(paths[route]["post"]["responses"]), route
    assert "429" not in paths["/health"]["get"]["responses"]
