"""Webhook subscriptions over HTTP, on both backends: create, read, list, replace, change,
delete, rotate; validation, the SSRF guard, secrets, ETags, ownership and permissions."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from keel.audit.models import AuditLog
from keel.platform.http.errors import ValidationFailed
from keel.platform.http.idempotency_store import IdempotencyRecord
from keel.platform.resources import Resources
from keel.settings import Environment, Settings
from keel.users.models import Role
from keel.webhooks import service
from keel.webhooks.models import Webhook
from tests.catalog import single_error
from tests.conftest import ClientFactory, make_settings
from tests.identity import Accounts, TestUser
from tests.webhooks.conftest import WEBHOOK_SETTINGS
from tests.webhooks.helpers import WEBHOOKS, create_webhook, webhook_url

TARGET = "http://127.0.0.1:9/hook"  # loopback is allowed in this module; nothing is sent here

pytestmark = pytest.mark.usefixtures("settle_queue")


@pytest.fixture(scope="module")
async def owner(accounts: Accounts) -> TestUser:
    return await accounts.create()


async def read(client: httpx.AsyncClient, user: TestUser, webhook_id: str) -> dict[str, Any]:
    response = await client.get(webhook_url(webhook_id), headers=user.headers)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


# --- Create -------------------------------------------------------------------------------


async def test_create_returns_201_with_the_secret_once_and_defaults(
    client: httpx.AsyncClient, owner: TestUser
) -> None:
    response = await client.post(
        WEBHOOKS,
        json={"name": " Orders ", "url": TARGET, "events": ["product.created", "product.updated"]},
        headers=owner.headers,
    )
    assert response.status_code == 201, response.text
    data = response.json()["data"]
    assert response.headers["Location"] == webhook_url(data["id"])
    assert response.headers["ETag"] == f'"{data["id"].replace("-", "")}-1"'
    assert data["secret"].startswith("whsec_")
    assert data["name"] == "Orders"
    assert (data["is_active"], data["timeout_seconds"], data["ssl_verify"], data["retry_policy"]) == (
        True,
        10,
        True,
        None,
    )
    assert (data["consecutive_failures"], data["disabled_reason"], data["owner_id"]) == (
        0,
        None,
        str(owner.id),
    )
    again = await read(client, owner, data["id"])
    assert "secret" not in again
    assert again == {key: value for key, value in data.items() if key != "secret"}


async def test_the_secret_is_never_readable_again_nor_stored_in_clear(
    client: httpx.AsyncClient, owner: TestUser, resources: Resources
) -> None:
    created = await create_webhook(client, owner, TARGET)
    secret = created["secret"]
    one = await client.get(webhook_url(created["id"]), headers=owner.headers)
    listed = await client.get(WEBHOOKS, params={"per_page": 100}, headers=owner.headers)
    patched = await client.patch(webhook_url(created["id"]), json={"name": "x"}, headers=owner.headers)
    for response in (one, listed, patched):
        assert response.status_code == 200
        assert secret not in response.text
        assert '"secret"' not in response.text
    async with resources.db.sessionmaker() as session:
        stored = (
            await session.execute(select(Webhook.secret).where(Webhook.id == uuid.UUID(created["id"])))
        ).scalar_one()
    assert secret not in stored
    assert service.open_secret(resources.security.secret_box, uuid.UUID(created["id"]), stored) == secret


async def test_a_response_with_the_secret_is_never_cached_nor_kept_in_clear_for_replays(
    client: httpx.AsyncClient, owner: TestUser, resources: Resources
) -> None:
    key = f"create-{uuid.uuid4()}"
    body = {"name": "Replayed", "url": TARGET, "events": ["*"]}
    headers = {**owner.headers, "Idempotency-Key": key}
    first = await client.post(WEBHOOKS, json=body, headers=headers)
    assert first.status_code == 201, first.text
    assert first.headers["Cache-Control"] == "no-store"
    secret = first.json()["data"]["secret"]
    async with resources.db.sessionmaker() as session:
        record = (
            await session.execute(select(IdempotencyRecord).where(IdempotencyRecord.key == key))
        ).scalar_one()
    assert record.body_encrypted
    assert secret.encode() not in (record.response_body or b"")
    replay = await client.post(WEBHOOKS, json=body, headers=headers)
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json()["data"]["secret"] == secret
    rotated = await client.post(
        f"{webhook_url(first.json()['data']['id'])}/rotate-secret", headers=owner.headers
    )
    assert rotated.status_code == 200
    assert rotated.headers["Cache-Control"] == "no-store"
    reread = await client.get(webhook_url(first.json()["data"]["id"]), headers=owner.headers)
    assert reread.headers["Cache-Control"] == "private, no-cache"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", ""),
        ("name", "n" * 101),
        ("url", ""),
        ("url", "http://127.0.0.1/" + "p" * 2048),
        ("description", "d" * 2001),
        ("events", []),
        ("events", ["product.exploded"]),
        ("events", ["product.created", "product.created"]),
        ("events", [f"e{i}" for i in range(51)]),
        ("timeout_seconds", 0),
        ("timeout_seconds", 31),
        ("retry_policy", {"max_retries": 21}),
        ("retry_policy", {"backoff_base": 0}),
        ("retry_policy", {"backoff_base": 60, "max_backoff": 30}),
        ("retry_policy", {"tries": 3}),
    ],
)
async def test_every_bound_is_enforced_with_a_field_error(
    client: httpx.AsyncClient, owner: TestUser, field: str, value: Any
) -> None:
    body = {"name": "Bounded", "url": TARGET, "events": ["*"], field: value}
    response = await client.post(WEBHOOKS, json=body, headers=owner.headers)
    assert response.status_code == 422, response.text
    assert all(item["code"] == "VALIDATION_ERROR" for item in response.json()["errors"])
    fields = [item["field"] for item in response.json()["errors"]]
    assert any(f == field or f.startswith(f"{field}.") for f in fields), fields


async def test_every_catalogue_event_and_the_wildcard_are_accepted(
    client: httpx.AsyncClient, owner: TestUser
) -> None:
    from keel.event_types import EventType

    names = [event.value for event in EventType]
    created = await create_webhook(client, owner, TARGET, events=[*names, "*"])
    assert created["events"] == [*names, "*"]


async def test_a_retry_policy_is_stored_with_its_defaults(client: httpx.AsyncClient, owner: TestUser) -> None:
    created = await create_webhook(client, owner, TARGET, retry_policy={"max_retries": 3})
    assert created["retry_policy"] == {"max_retries": 3, "backoff_base": 5.0, "max_backoff": 36000.0}


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://localhost/",
        "http://0.0.0.0/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/",
        "http://2130706433/",
        "file:///etc/passwd",
        "gopher://x/",
        "https://user:pw@127.0.0.1/",
    ],
)
async def test_the_ssrf_guard_refuses_private_and_odd_targets(url: str) -> None:
    settings = make_settings(webhooks_allow_private_targets=False)
    with pytest.raises(ValidationFailed) as refused:
        await service.check_url(settings, url)
    assert refused.value.field == "url"
    assert refused.value.message


async def test_a_refused_url_is_a_422_on_url_at_creation_and_update(
    client: httpx.AsyncClient, client_with: ClientFactory, owner: TestUser
) -> None:
    existing = await create_webhook(client, owner, TARGET)
    async with client_with(**{**WEBHOOK_SETTINGS, "webhooks_allow_private_targets": False}) as strict:
        for method, path in (("POST", WEBHOOKS), ("PATCH", webhook_url(existing["id"]))):
            body = {"name": "Metadata", "url": "http://169.254.169.254/", "events": ["*"]}
            response = await strict.request(method, path, json=body, headers=owner.headers)
            assert response.status_code == 422, response.text
            error = single_error(response)
            assert (error["code"], error["field"]) == ("VALIDATION_ERROR", "url")
            assert "private" in error["message"]


def test_http_targets_are_refused_in_production_by_default() -> None:
    production = Settings.model_construct(env=Environment.PRODUCTION, webhooks_allow_http=None)
    assert not production.allows_http_webhooks


async def test_a_user_may_have_only_so_many_webhooks(
    client: httpx.AsyncClient, accounts: Accounts, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = await accounts.create()
    monkeypatch.setattr(service, "MAX_WEBHOOKS_PER_USER", 2)
    for _ in range(2):
        await create_webhook(client, user, TARGET)
    refused = await client.post(
        WEBHOOKS, json={"name": "third", "url": TARGET, "events": ["*"]}, headers=user.headers
    )
    assert refused.status_code == 409
    assert single_error(refused)["code"] == "CONFLICT"


# --- Read, list -------------------------------------------------------------------------------


async def test_a_list_shows_only_your_webhooks_newest_first_paged(
    client: httpx.AsyncClient, accounts: Accounts
) -> None:
    mine, theirs = await accounts.create(), await accounts.create()
    created = [await create_webhook(client, mine, TARGET, name=f"hook {i}") for i in range(3)]
    await create_webhook(client, theirs, TARGET)
    response = await client.get(WEBHOOKS, params={"per_page": 2}, headers=mine.headers)
    assert response.status_code == 200
    body = response.json()
    assert [item["id"] for item in body["data"]] == [created[2]["id"], created[1]["id"]]
    assert body["meta"]["pagination"]["total"] == 3
    assert 'rel="next"' in response.headers["Link"]
    by_name = await client.get(WEBHOOKS, params={"sort": "name"}, headers=mine.headers)
    assert [item["name"] for item in by_name.json()["data"]] == ["hook 0", "hook 1", "hook 2"]
    bad_sort = await client.get(WEBHOOKS, params={"sort": "url"}, headers=mine.headers)
    assert bad_sort.status_code == 422


async def test_if_none_match_with_the_current_etag_is_304(client: httpx.AsyncClient, owner: TestUser) -> None:
    created = await create_webhook(client, owner, TARGET)
    first = await client.get(webhook_url(created["id"]), headers=owner.headers)
    assert first.headers["Cache-Control"] == "private, no-cache"
    again = await client.get(
        webhook_url(created["id"]), headers={**owner.headers, "If-None-Match": first.headers["ETag"]}
    )
    assert again.status_code == 304


# --- Replace, change --------------------------------------------------------------------------


async def test_patch_changes_only_what_is_sent(client: httpx.AsyncClient, owner: TestUser) -> None:
    created = await create_webhook(
        client, owner, TARGET, description="keep", timeout_seconds=5, retry_policy={"max_retries": 1}
    )
    url = webhook_url(created["id"])
    response = await client.patch(url, json={"events": ["folder.created"]}, headers=owner.headers)
    assert response.status_code == 200
    data = await read(client, owner, created["id"])
    assert data["events"] == ["folder.created"]
    assert (data["description"], data["timeout_seconds"], data["retry_policy"]["max_retries"]) == (
        "keep",
        5,
        1,
    )
    assert data["version"] == 2
    cleared = await client.patch(url, json={"description": None, "retry_policy": None}, headers=owner.headers)
    assert (cleared.json()["data"]["description"], cleared.json()["data"]["retry_policy"]) == (None, None)
    for field in ("name", "url", "events", "is_active", "timeout_seconds", "ssl_verify"):
        refused = await client.patch(url, json={field: None}, headers=owner.headers)
        assert refused.status_code == 422, field
        assert single_error(refused)["field"] == field
    unknown = await client.patch(url, json={"secret": "whsec_mine"}, headers=owner.headers)
    assert unknown.status_code == 422


async def test_put_replaces_every_field_and_resets_omitted_ones(
    client: httpx.AsyncClient, owner: TestUser
) -> None:
    created = await create_webhook(
        client, owner, TARGET, description="old", ssl_verify=False, retry_policy={"max_retries": 2}
    )
    body = {"name": "Replaced", "url": "http://127.0.0.1:10/other", "events": ["user.created"]}
    response = await client.put(webhook_url(created["id"]), json=body, headers=owner.headers)
    assert response.status_code == 200
    data = await read(client, owner, created["id"])
    assert (data["name"], data["url"], data["events"]) == ("Replaced", body["url"], ["user.created"])
    assert (data["description"], data["ssl_verify"], data["retry_policy"]) == (None, True, None)


async def test_if_match_with_a_stale_etag_is_412_and_changes_nothing(
    client: httpx.AsyncClient, owner: TestUser
) -> None:
    created = await create_webhook(client, owner, TARGET)
    url = webhook_url(created["id"])
    etag = (await client.get(url, headers=owner.headers)).headers["ETag"]
    first = await client.patch(url, json={"name": "first"}, headers={**owner.headers, "If-Match": etag})
    assert first.status_code == 200
    assert first.headers["ETag"] != etag
    for method in ("PATCH", "PUT", "DELETE"):
        body = {"name": "second", "url": TARGET, "events": ["*"]} if method != "DELETE" else None
        stale = await client.request(method, url, json=body, headers={**owner.headers, "If-Match": etag})
        assert stale.status_code == 412, method
        assert single_error(stale)["code"] == "PRECONDITION_FAILED"
    stale_rotation = await client.post(f"{url}/rotate-secret", headers={**owner.headers, "If-Match": etag})
    assert stale_rotation.status_code == 412
    assert (await read(client, owner, created["id"]))["name"] == "first"


async def test_pausing_and_reenabling(client: httpx.AsyncClient, owner: TestUser) -> None:
    created = await create_webhook(client, owner, TARGET)
    url = webhook_url(created["id"])
    paused = (await client.patch(url, json={"is_active": False}, headers=owner.headers)).json()["data"]
    assert paused["is_active"] is False
    assert paused["disabled_at"] is not None
    assert "owner" in paused["disabled_reason"]
    resumed = (await client.patch(url, json={"is_active": True}, headers=owner.headers)).json()["data"]
    assert (resumed["is_active"], resumed["disabled_at"], resumed["disabled_reason"]) == (True, None, None)


# --- Delete, rotate ---------------------------------------------------------------------------


async def test_delete_is_204_then_404(client: httpx.AsyncClient, owner: TestUser) -> None:
    created = await create_webhook(client, owner, TARGET)
    url = webhook_url(created["id"])
    deleted = await client.delete(url, headers=owner.headers)
    assert deleted.status_code == 204
    assert (await client.get(url, headers=owner.headers)).status_code == 404
    assert (await client.delete(url, headers=owner.headers)).status_code == 404


async def test_rotate_returns_a_new_secret_and_keeps_the_old_one_for_the_overlap(
    client: httpx.AsyncClient, owner: TestUser
) -> None:
    created = await create_webhook(client, owner, TARGET)
    rotated = await client.post(f"{webhook_url(created['id'])}/rotate-secret", headers=owner.headers)
    assert rotated.status_code == 200
    data = rotated.json()["data"]
    assert data["secret"].startswith("whsec_")
    assert data["secret"] != created["secret"]
    assert data["previous_secret_expires_at"] is not None
    assert data["version"] == 2
    assert "secret" not in await read(client, owner, created["id"])


async def test_writes_are_audited(client: httpx.AsyncClient, owner: TestUser, resources: Resources) -> None:
    created = await create_webhook(client, owner, TARGET)
    url = webhook_url(created["id"])
    await client.patch(url, json={"name": "audited"}, headers=owner.headers)
    await client.post(f"{url}/rotate-secret", headers=owner.headers)
    await client.delete(url, headers=owner.headers)
    async with resources.db.sessionmaker() as session:
        rows = (
            await session.execute(
                select(AuditLog.action, AuditLog.detail)
                .where(AuditLog.resource_id == created["id"])
                .order_by(AuditLog.id)
            )
        ).all()
    assert [row.action for row in rows] == [
        "webhook.created",
        "webhook.updated",
        "webhook.secret_rotated",
        "webhook.deleted",
    ]
    assert created["secret"] not in str([row.detail for row in rows])


# --- Who may do what ----------------------------------------------------------------------------


def _every_route(webhook_id: str, delivery_id: str) -> list[tuple[str, str]]:
    url = webhook_url(webhook_id)
    return [
        ("GET", url),
        ("PUT", url),
        ("PATCH", url),
        ("DELETE", url),
        ("POST", f"{url}/rotate-secret"),
        ("POST", f"{url}/test"),
        ("GET", f"{url}/deliveries"),
        ("GET", f"{url}/deliveries/{delivery_id}"),
        ("POST", f"{url}/deliveries/{delivery_id}/redeliver"),
    ]


async def _a_delivery(client: httpx.AsyncClient, user: TestUser, webhook_id: str) -> str:
    response = await client.post(f"{webhook_url(webhook_id)}/test", headers=user.headers)
    assert response.status_code == 202, response.text
    delivery_id: str = response.json()["data"]["id"]
    return delivery_id


async def test_another_users_webhooks_and_deliveries_are_404_on_every_route(
    client: httpx.AsyncClient, owner: TestUser, accounts: Accounts
) -> None:
    stranger = await accounts.create()
    theirs = await create_webhook(client, owner, TARGET)
    delivery_id = await _a_delivery(client, owner, theirs["id"])
    body = {"name": "mine now", "url": TARGET, "events": ["*"]}
    for method, path in _every_route(theirs["id"], delivery_id):
        response = await client.request(
            method, path, json=body if method in ("PUT", "PATCH") else None, headers=stranger.headers
        )
        assert response.status_code == 404, (method, path, response.text)
        assert single_error(response)["code"] == "NOT_FOUND"
    # The stranger's own webhook does not open the owner's deliveries either.
    own = await create_webhook(client, stranger, TARGET)
    for method, path in _every_route(own["id"], delivery_id)[-2:]:
        response = await client.request(method, path, headers=stranger.headers)
        assert response.status_code == 404, (method, path)
    assert (await read(client, owner, theirs["id"]))["name"] == "Hook"


async def test_anonymous_gets_401_on_every_webhook_route(client: httpx.AsyncClient) -> None:
    some = str(uuid.uuid4())
    for method, path in [("GET", WEBHOOKS), ("POST", WEBHOOKS), *_every_route(some, some)]:
        response = await client.request(method, path, json={} if method in ("POST", "PUT", "PATCH") else None)
        assert response.status_code == 401, (method, path)
        assert single_error(response)["code"] == "AUTHENTICATION_REQUIRED"


async def test_without_webhook_permissions_it_is_403(
    client: httpx.AsyncClient, owner: TestUser, accounts: Accounts
) -> None:
    guest = await accounts.create(role=Role.GUEST)
    listed = await client.get(WEBHOOKS, headers=guest.headers)
    assert listed.status_code == 403
    created = await client.post(
        WEBHOOKS, json={"name": "g", "url": TARGET, "events": ["*"]}, headers=guest.headers
    )
    assert created.status_code == 403
    # An API key scoped to reading cannot write.
    key = await client.post(
        "/api/v2/api-keys", json={"name": "read only", "scopes": ["webhooks:read"]}, headers=owner.headers
    )
    assert key.status_code == 201, key.text
    reader = {"X-API-Key": key.json()["data"]["secret"]}
    assert (await client.get(WEBHOOKS, headers=reader)).status_code == 200
    refused = await client.post(WEBHOOKS, json={"name": "k", "url": TARGET, "events": ["*"]}, headers=reader)
    assert refused.status_code == 403
    assert single_error(refused)["code"] == "FORBIDDEN"
