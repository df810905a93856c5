"""Idempotency-Key on POST, on both backends, through real endpoints (POST /api-keys)
and a few probe routes for what no production route does on purpose (a 5xx, a commit
followed by a failure, a lost lease)."""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import APIRouter, FastAPI, Request
from sqlalchemy import delete, func, select, update
from starlette.responses import Response

from keel.app import create_app
from keel.auth.dependencies import CurrentPrincipal
from keel.platform.db import SessionDep
from keel.platform.db.base import utcnow
from keel.platform.http.envelope import error_item, error_response, ok
from keel.platform.http.idempotency import MAX_STORED_BYTES
from keel.platform.http.idempotency_store import (
    RECORD_ID_STATE,
    IdempotencyRecord,
    State,
    purge_expired,
)
from keel.platform.resources import Resources
from keel.settings import Settings
from keel.users.models import User
from tests.identity import Accounts, TestUser

URL = "/api/v2/api-keys"
PROBE = "/probe/idempotency"
BODY = {"name": "ci", "scopes": ["profile:read"]}

calls: Counter[str] = Counter()
probe = APIRouter(prefix=PROBE)


@probe.post("/status/{status}/{tag}")
async def respond_with_status(status: int, tag: str) -> Response:
    calls[tag] += 1
    return error_response(status, [error_item(status)])


@probe.post("/crash/{tag}")
async def crash(tag: str) -> Response:
    calls[tag] += 1
    raise RuntimeError("unexpected failure")


@probe.post("/large/{tag}")
async def large(tag: str) -> Response:
    calls[tag] += 1
    return Response(b"x" * (MAX_STORED_BYTES + 1), media_type="application/octet-stream")


@probe.post("/commit-then-503/{tag}")
async def commit_then_fail(tag: str, principal: CurrentPrincipal, session: SessionDep) -> Response:
    calls[tag] += 1
    # Returned, not raised: the request's transaction commits, then the response is a 503,
    # as when a process dies between the commit and storing the response.
    return error_response(503, [error_item(503)])


@probe.post("/lose-lease")
async def lose_lease(request: Request, principal: CurrentPrincipal, session: SessionDep) -> Response:
    # A retry taking the record over replaces it; simulated here in the handler's own
    # transaction, so the change below is what the lost lease must undo.
    record_id = request.scope["state"][RECORD_ID_STATE]
    await session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.id == record_id))
    await session.execute(update(User).where(User.id == principal.user_id).values(full_name="Lost lease"))
    return ok({"done": True}, status_code=201)


@pytest.fixture(scope="module")
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    application.include_router(probe)
    async with LifespanManager(application):
        yield application


def resources_of(app: FastAPI) -> Resources:
    resources: Resources = app.state.resources
    return resources


def new_key() -> str:
    return secrets.token_urlsafe(16)


def with_key(user: TestUser, key: str) -> dict[str, str]:
    return {**user.headers, "Idempotency-Key": key}


def single_error(response: httpx.Response) -> dict[str, Any]:
    errors: list[dict[str, Any]] = response.json()["errors"]
    assert len(errors) == 1, errors
    return errors[0]


async def key_count(client: httpx.AsyncClient, user: TestUser) -> int:
    response = await client.get(URL, headers=user.headers)
    assert response.status_code == 200, response.text
    return len(response.json()["data"])


async def record_of(app: FastAPI, user: TestUser, key: str) -> IdempotencyRecord | None:
    async with resources_of(app).db.sessionmaker() as session:
        return (
            await session.execute(
                select(IdempotencyRecord).where(
                    IdempotencyRecord.principal == str(user.id), IdempotencyRecord.key == key
                )
            )
        ).scalar_one_or_none()


async def records_with_key(app: FastAPI, key: str) -> int:
    async with resources_of(app).db.sessionmaker() as session:
        count = await session.scalar(
            select(func.count()).select_from(IdempotencyRecord).where(IdempotencyRecord.key == key)
        )
    return int(count or 0)


async def change_record(app: FastAPI, user: TestUser, key: str, **values: Any) -> None:
    async with resources_of(app).db.sessionmaker() as session:
        await session.execute(
            update(IdempotencyRecord)
            .where(IdempotencyRecord.principal == str(user.id), IdempotencyRecord.key == key)
            .values(**values)
        )
        await session.commit()


# --- Replay -------------------------------------------------------------------------


async def test_a_retry_replays_the_first_response_and_creates_nothing(
    client: httpx.AsyncClient, accounts: Accounts
) -> None:
    user = await accounts.create()
    key = new_key()
    first = await client.post(URL, json=BODY, headers=with_key(user, key))
    retry = await client.post(URL, json=BODY, headers=with_key(user, key))

    assert first.status_code == 201
    assert "Idempotent-Replayed" not in first.headers
    assert retry.status_code == 201
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.content == first.content
    for header in ("Content-Type", "Location", "Cache-Control"):
        assert retry.headers[header] == first.headers[header]
    assert retry.headers["X-Request-ID"] != first.headers["X-Request-ID"]
    assert await key_count(client, user) == 1


async def test_a_retry_with_a_refreshed_access_token_replays(
    client: httpx.AsyncClient, accounts: Accounts
) -> None:
    user = await accounts.create()
    key = new_key()
    first = await client.post(URL, json=BODY, headers=with_key(user, key))
    await accounts.login(user)  # a new session, a new access token: the same user
    retry = await client.post(URL, json=BODY, headers=with_key(user, key))

    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.content == first.content
    assert await key_count(client, user) == 1


async def test_a_v1_retry_of_a_v2_request_replays_in_the_v1_shape(
    client: httpx.AsyncClient, accounts: Accounts
) -> None:
    user = await accounts.create()
    key = new_key()
    first = await client.post(URL, json=BODY, headers=with_key(user, key))
    retry = await client.post("/api/v1/api-keys", json=BODY, headers=with_key(user, key))

    assert retry.status_code == 201
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.json()["id"] == first.json()["data"]["id"]
    assert retry.headers["Location"] == f"/api/v1/api-keys/{retry.json()['id']}"
    assert await key_count(client, user) == 1


async def test_the_same_key_with_a_different_body_is_422_key_reused(
    client: httpx.AsyncClient, accounts: Accounts
) -> None:
    user = await accounts.create()
    key = new_key()
    await client.post(URL, json=BODY, headers=with_key(user, key))
    response = await client.post(URL, json={**BODY, "name": "other"}, headers=with_key(user, key))

    assert response.status_code == 422
    error = single_error(response)
    assert error["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert error["field"] == "Idempotency-Key"
    assert await key_count(client, user) == 1


async def test_concurrent_duplicates_create_exactly_one_key(
    client: httpx.AsyncClient, accounts: Accounts
) -> None:
    user = await accounts.create()
    key = new_key()
    responses = await asyncio.gather(
        *(client.post(URL, json=BODY, headers=with_key(user, key)) for _ in range(8))
    )

    originals = [r for r in responses if r.status_code == 201 and "Idempotent-Replayed" not in r.headers]
    assert len(originals) == 1
    for response in responses:
        if response is originals[0]:
            continue
        if response.status_code == 201:
            assert response.headers["Idempotent-Replayed"] == "true"
            assert response.content == originals[0].content
        else:
            assert response.status_code == 409, response.text
            assert single_error(response)["code"] == "IDEMPOTENCY_IN_PROGRESS"
            assert int(response.headers["Retry-After"]) >= 1
    assert await key_count(client, user) == 1


async def test_another_user_with_the_same_key_is_independent(
    client: httpx.AsyncClient, accounts: Accounts
) -> None:
    alice, bob = await accounts.create(), await accounts.create()
    key = new_key()
    for_alice = await client.post(URL, json=BODY, headers=with_key(alice, key))
    for_bob = await client.post(URL, json=BODY, headers=with_key(bob, key))

    assert for_alice.status_code == for_bob.status_code == 201
    assert "Idempotent-Replayed" not in for_bob.headers
    assert for_bob.json()["data"]["id"] != for_alice.json()["data"]["id"]
    assert await key_count(client, alice) == await key_count(client, bob) == 1


# --- What passes straight through -----------------------------------------------------


async def test_anonymous_posts_pass_through_and_run_every_time(
    app: FastAPI, client: httpx.AsyncClient, accounts: Accounts
) -> None:
    user = await accounts.create(login=False)
    key = new_key()
    login = {"email": user.email, "password": user.password}
    first = await client.post("/api/v2/auth/login", json=login, headers={"Idempotency-Key": key})
    second = await client.post("/api/v2/auth/login", json=login, headers={"Idempotency-Key": key})

    assert first.status_code == second.status_code == 200
    assert "Idempotent-Replayed" not in second.headers
    assert first.json()["data"]["refresh_token"] != second.json()["data"]["refresh_token"]
    assert await records_with_key(app, key) == 0


async def test_invalid_credentials_pass_through_to_the_routes_401(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    key = new_key()
    response = await client.post(
        URL, json=BODY, headers={"Authorization": "Bearer not-a-token", "Idempotency-Key": key}
    )

    assert response.status_code == 401
    assert await records_with_key(app, key) == 0


async def test_non_post_requests_ignore_the_header(client: httpx.AsyncClient, accounts: Accounts) -> None:
    user = await accounts.create()
    response = await client.get(URL, headers={**user.headers, "Idempotency-Key": "not checked on GET"})

    assert response.status_code == 200
    assert "Idempotent-Replayed" not in response.headers


@pytest.mark.parametrize(
    "key",
    ["k" * 256, "has space", "tab\there", "bell\x07", "", "clé"],
    ids=["too-long", "space", "tab", "control", "empty", "non-ascii"],
)
async def test_a_malformed_key_is_422(client: httpx.AsyncClient, accounts: Accounts, key: str) -> None:
    user = await accounts.create()
    headers = [(name.encode(), value.encode()) for name, value in user.headers.items()]
    headers.append((b"idempotency-key", key.encode("latin-1")))
    response = await client.post(URL, json=BODY, headers=headers)

    assert response.status_code == 422
    error = single_error(response)
    assert error["code"] == "VALIDATION_ERROR"
    assert error["field"] == "Idempotency-Key"
    assert await key_count(client, user) == 0


async def test_a_key_of_255_printable_characters_is_accepted(
    app: FastAPI, client: httpx.AsyncClient, accounts: Accounts
) -> None:
    user = await accounts.create()
    key = "".join(chr(code) for code in range(0x21, 0x7F)) * 3  # 282 characters
    response = await client.post(URL, json=BODY, headers=with_key(user, key[:255]))

    assert response.status_code == 201
    assert await record_of(app, user, key[:255]) is not None


async def test_a_body_over_the_limit_while_reading_is_413(
    client: httpx.AsyncClient, accounts: Accounts
) -> None:
    user = await accounts.create()

    async def chunks() -> AsyncIterator[bytes]:
        # Streamed without Content-Length, so the limit bites while the body is read.
        for _ in range(9):
            yield b" " * 131_072

    response = await client.post(URL, content=chunks(), headers=with_key(user, new_key()))

    assert response.status_code == 413
    assert single_error(response)["code"] == "PAYLOAD_TOO_LARGE"
    assert response.headers["connection"] == "close"


# --- What is not stored -----------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 503, 429])
async def test_a_5xx_or_429_is_not_stored_and_a_retry_runs_again(
    app: FastAPI, client: httpx.AsyncClient, accounts: Accounts, status: int
) -> None:
    user = await accounts.create()
    key, tag = new_key(), new_key()
    first = await client.post(f"{PROBE}/status/{status}/{tag}", headers=with_key(user, key))
    retry = await client.post(f"{PROBE}/status/{status}/{tag}", headers=with_key(user, key))

    assert first.status_code == retry.status_code == status
    assert "Idempotent-Replayed" not in retry.headers
    assert calls[tag] == 2
    assert await record_of(app, user, key) is None


async def test_a_crash_is_not_stored_and_a_retry_runs_again(
    app: FastAPI, client: httpx.AsyncClient, accounts: Accounts
) -> None:
    user = await accounts.create()
    key, tag = new_key(), new_key()
    first = await client.post(f"{PROBE}/crash/{tag}", headers=with_key(user, key))
    retry = await client.post(f"{PROBE}/crash/{tag}", headers=with_key(user, key))

    assert first.status_code == retry.status_code == 500
    assert calls[tag] == 2
    assert await record_of(app, user, key) is None


async def test_a_4xx_is_stored_and_replayed(client: httpx.AsyncClient, accounts: Accounts) -> None:
    user = await accounts.create()
    key, tag = new_key(), new_key()
    first = await client.post(f"{PROBE}/status/409/{tag}", headers=with_key(user, key))
    retry = await client.post(f"{PROBE}/status/409/{tag}", headers=with_key(user, key))

    assert retry.status_code == 409
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.content == first.content
    assert calls[tag] == 1


async def test_a_response_over_the_storage_bound_is_not_stored(
    app: FastAPI, client: httpx.AsyncClient, accounts: Accounts
) -> None:
    user = await accounts.create()
    key, tag = new_key(), new_key()
    first = await client.post(f"{PROBE}/large/{tag}", headers=with_key(user, key))
    retry = await client.post(f"{PROBE}/large/{tag}", headers=with_key(user, key))

    assert first.status_code == retry.status_code == 200
    assert len(first.content) == MAX_STORED_BYTES + 1
    assert "Idempotent-Replayed" not in retry.headers
    assert calls[tag] == 2
    assert await record_of(app, user, key) is None


async def test_a_no_store_response_is_stored_encrypted(
    app: FastAPI, client: httpx.AsyncClient, accounts: Accounts
) -> None:
    user = await accounts.create()
    key = new_key()
    first = await client.post(URL, json=BODY, headers=with_key(user, key))
    secret = first.json()["data"]["secret"]
    record = await record_of(app, user, key)

    assert first.headers["Cache-Control"] == "no-store"
    assert record is not None
    assert record.body_encrypted
    assert record.response_body is not None
    assert secret.encode() not in record.response_body
    assert b'"success"' not in record.response_body
    retry = await client.post(URL, json=BODY, headers=with_key(user, key))
    assert retry.json()["data"]["secret"] == secret


# --- Expiry, leases and crashes ----------------------------------------------------------


async def test_an_expired_record_is_ignored(
    app: FastAPI, client: httpx.AsyncClient, accounts: Accounts
) -> None:
    user = await accounts.create()
    key = new_key()
    await client.post(URL, json=BODY, headers=with_key(user, key))
    await change_record(app, user, key, expires_at=utcnow() - timedelta(seconds=1))
    retry = await client.post(URL, json=BODY, headers=with_key(user, key))

    assert retry.status_code == 201
    assert "Idempotent-Replayed" not in retry.headers
    assert await key_count(client, user) == 2


async def test_an_in_progress_record_within_its_lease_is_409_with_retry_after(
    app: FastAPI, client: httpx.AsyncClient, accounts: Accounts
) -> None:
    user = await accounts.create()
    key = new_key()
    await client.post(URL, json=BODY, headers=with_key(user, key))
    await change_record(
        app, user, key, state=State.IN_PROGRESS, locked_until=utcnow() + timedelta(seconds=30)
    )
    response = await client.post(URL, json=BODY, headers=with_key(user, key))

    assert response.status_code == 409
    assert single_error(response)["code"] == "IDEMPOTENCY_IN_PROGRESS"
    assert 1 <= int(response.headers["Retry-After"]) <= 30
    assert await key_count(client, user) == 1


async def test_an_in_progress_record_past_its_lease_is_taken_over(
    app: FastAPI, client: httpx.AsyncClient, accounts: Accounts
) -> None:
    user = await accounts.create()
    key = new_key()
    await client.post(URL, json=BODY, headers=with_key(user, key))
    stale = await record_of(app, user, key)
    # As if the first request died before committing: in progress, lease over, no response.
    await change_record(
        app,
        user,
        key,
        state=State.IN_PROGRESS,
        locked_until=utcnow() - timedelta(seconds=1),
        response_status=None,
        response_headers=None,
        response_body=None,
    )
    retry = await client.post(URL, json=BODY, headers=with_key(user, key))
    record = await record_of(app, user, key)

    assert retry.status_code == 201
    assert "Idempotent-Replayed" not in retry.headers
    assert stale is not None
    assert record is not None
    assert record.id != stale.id
    assert record.state == State.COMPLETED
    assert await key_count(client, user) == 2


async def test_a_request_committed_without_a_stored_response_is_never_run_again(
    app: FastAPI, client: httpx.AsyncClient, accounts: Accounts
) -> None:
    user = await accounts.create()
    key, tag = new_key(), new_key()
    url = f"{PROBE}/commit-then-503/{tag}"
    first = await client.post(url, headers=with_key(user, key))
    record = await record_of(app, user, key)
    assert first.status_code == 503
    assert record is not None
    assert record.state == State.COMMITTED

    while_leased = await client.post(url, headers=with_key(user, key))
    await change_record(app, user, key, locked_until=utcnow() - timedelta(seconds=1))
    after_lease = await client.post(url, headers=with_key(user, key))

    assert while_leased.status_code == 409
    assert single_error(while_leased)["code"] == "IDEMPOTENCY_IN_PROGRESS"
    assert after_lease.status_code == 409
    error = single_error(after_lease)
    assert error["code"] == "CONFLICT"
    assert "cannot be replayed" in error["message"]
    assert calls[tag] == 1


async def test_a_request_whose_lease_was_taken_over_rolls_back(
    app: FastAPI, client: httpx.AsyncClient, accounts: Accounts
) -> None:
    user = await accounts.create()
    response = await client.post(f"{PROBE}/lose-lease", headers=with_key(user, new_key()))

    assert response.status_code == 409
    error = single_error(response)
    assert error["code"] == "CONFLICT"
    assert "lease" in error["message"]
    async with resources_of(app).db.sessionmaker() as session:
        stored = await session.get_one(User, user.id)
    assert stored.full_name != "Lost lease"


# --- Purge -----------------------------------------------------------------------------


async def test_purge_expired_removes_only_expired_rows(
    app: FastAPI, client: httpx.AsyncClient, accounts: Accounts
) -> None:
    user = await accounts.create()
    expired, live = new_key(), new_key()
    for key in (expired, live):
        await client.post(URL, json=BODY, headers=with_key(user, key))
    await change_record(app, user, expired, expires_at=utcnow() - timedelta(seconds=1))

    db = resources_of(app).db
    async with db.sessionmaker() as session:
        now = utcnow()
        due = await session.scalar(
            select(func.count()).select_from(IdempotencyRecord).where(IdempotencyRecord.expires_at <= now)
        )
        purged = await purge_expired(session, now)
        await session.commit()

    assert purged == due
    assert await record_of(app, user, expired) is None
    assert await record_of(app, user, live) is not None


async def test_the_api_description_documents_the_header(client: httpx.AsyncClient) -> None:
    description = (await client.get("/openapi.json")).json()["info"]["description"]

    assert "Idempotency-Key" in description
    assert "IDEMPOTENCY_KEY_REUSED" in description


async def test_an_api_key_cannot_replay_a_response_made_for_its_owners_session(
    client: httpx.AsyncClient, accounts: Accounts
) -> None:
    owner = await accounts.create()
    body = {"name": "from session", "scopes": ["profile:read", "api_keys:write"]}
    headers = {**owner.headers, "Idempotency-Key": "shared-key"}
    first = await client.post(URL, json=body, headers=headers)
    assert first.status_code == 201
    key_headers = {"X-API-Key": first.json()["data"]["secret"], "Idempotency-Key": "shared-key"}
    from_key = await client.post(URL, json={**body, "scopes": ["profile:read"]}, headers=key_headers)
    assert from_key.status_code == 201
    assert "Idempotent-Replayed" not in from_key.headers
    assert from_key.json()["data"]["secret"] != first.json()["data"]["secret"]
