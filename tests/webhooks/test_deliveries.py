"""Deliveries over the wire, on both backends: real receivers on loopback, signatures
checked with the `standardwebhooks` package, retries, failures, disabling, redelivery."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import func, select, update
from standardwebhooks import Webhook as Verifier
from standardwebhooks.webhooks import WebhookVerificationError

from keel.platform.db.base import utcnow
from keel.platform.queue import Job
from keel.platform.queue.worker import drain
from keel.platform.resources import Resources
from keel.webhooks.models import Webhook, WebhookDelivery
from tests.catalog import single_error
from tests.identity import Accounts, TestUser
from tests.webhooks.conftest import StartReceiver
from tests.webhooks.helpers import create_webhook, deliveries, emit_event, run_jobs, webhook_url
from tests.webhooks.receiver import Answer

FAST = {"max_retries": 3, "backoff_base": 1, "max_backoff": 1}

pytestmark = pytest.mark.usefixtures("settle_queue")


@pytest.fixture
async def owner(accounts: Accounts) -> TestUser:
    return await accounts.create()


def verify(secret: str, hit: Any) -> dict[str, Any]:
    payload: dict[str, Any] = Verifier(secret).verify(hit.body, hit.headers)
    return payload


async def fire(resources: Resources, user: TestUser, event_type: str = "job.succeeded") -> str:
    """An event only ``user``'s webhooks may see (a job of theirs)."""
    return await emit_event(
        resources,
        event_type,
        {"id": str(uuid.uuid4()), "status": "succeeded"},
        subject_type="job",
        subject_id=uuid.uuid4(),
        actor_id=user.id,
    )


async def only_delivery(client: httpx.AsyncClient, user: TestUser, webhook_id: str) -> dict[str, Any]:
    items = await deliveries(client, user, webhook_id)
    assert len(items) == 1, items
    return items[0]


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value)


# --- Signed, Standard Webhooks -----------------------------------------------------------------


async def test_a_delivery_is_signed_and_shaped_per_standard_webhooks(
    client: httpx.AsyncClient, owner: TestUser, resources: Resources, receiver_factory: StartReceiver
) -> None:
    receiver = await receiver_factory()
    hook = await create_webhook(client, owner, receiver.url(), events=["job.succeeded"])
    event_id = await fire(resources, owner)
    await run_jobs(resources)
    assert len(receiver.hits) == 1
    hit = receiver.hits[0]
    assert (hit.method, hit.target, hit.headers["content-type"]) == ("POST", "/hook", "application/json")
    assert hit.headers["webhook-id"] == event_id
    assert verify(hook["secret"], hit)["type"] == "job.succeeded"
    body = orjson.loads(hit.body)
    assert set(body) == {"type", "timestamp", "data"}
    assert body["data"]["status"] == "succeeded"
    assert body["timestamp"].endswith("Z")
    with pytest.raises(WebhookVerificationError):
        Verifier("whsec_" + "A" * 43 + "=").verify(hit.body, hit.headers)
    delivery = await only_delivery(client, owner, hook["id"])
    assert (delivery["status"], delivery["event_id"], delivery["attempt_count"]) == ("succeeded", event_id, 1)
    attempt = delivery["attempts"][0]
    assert (attempt["number"], attempt["status_code"], attempt["error"]) == (1, 200, None)
    assert attempt["response_body"] == "ok"
    assert attempt["duration_ms"] > 0
    assert delivery["finished_at"] is not None
    assert delivery["next_attempt_at"] is None


async def test_after_rotation_both_secrets_verify_during_the_overlap_then_only_the_new(
    client: httpx.AsyncClient, owner: TestUser, resources: Resources, receiver_factory: StartReceiver
) -> None:
    receiver = await receiver_factory()
    hook = await create_webhook(client, owner, receiver.url())
    rotated = await client.post(f"{webhook_url(hook['id'])}/rotate-secret", headers=owner.headers)
    new_secret = rotated.json()["data"]["secret"]
    assert (await client.post(f"{webhook_url(hook['id'])}/test", headers=owner.headers)).status_code == 202
    await run_jobs(resources)
    assert verify(hook["secret"], receiver.hits[-1])["type"] == "webhook.test"
    assert verify(new_secret, receiver.hits[-1])["type"] == "webhook.test"
    # The overlap ends: the old secret stops signing.
    async with resources.db.writer() as session:
        await session.execute(
            update(Webhook)
            .where(Webhook.id == uuid.UUID(hook["id"]))
            .values(previous_secret_expires_at=utcnow() - timedelta(seconds=1))
        )
        await session.commit()
    await client.post(f"{webhook_url(hook['id'])}/test", headers=owner.headers)
    await run_jobs(resources)
    assert verify(new_secret, receiver.hits[-1])
    with pytest.raises(WebhookVerificationError):
        verify(hook["secret"], receiver.hits[-1])


async def test_the_test_route_delivers_webhook_test_to_that_webhook_only(
    client: httpx.AsyncClient, owner: TestUser, resources: Resources, receiver_factory: StartReceiver
) -> None:
    target, bystander = await receiver_factory(), await receiver_factory()
    hook = await create_webhook(client, owner, target.url(), events=["product.created"])
    await create_webhook(client, owner, bystander.url(), events=["*"])
    response = await client.post(f"{webhook_url(hook['id'])}/test", headers=owner.headers)
    assert response.status_code == 202
    data = response.json()["data"]
    assert response.headers["Location"] == f"{webhook_url(hook['id'])}/deliveries/{data['id']}"
    assert (data["status"], data["event_type"], data["attempts"]) == ("pending", "webhook.test", [])
    await run_jobs(resources)
    assert [orjson.loads(hit.body)["type"] for hit in target.hits] == ["webhook.test"]
    assert bystander.hits == []
    one = await client.get(f"{webhook_url(hook['id'])}/deliveries/{data['id']}", headers=owner.headers)
    assert one.json()["data"]["status"] == "succeeded"


# --- Retries ----------------------------------------------------------------------------------


async def test_a_receiver_failing_twice_gets_the_event_once_after_two_retries(
    client: httpx.AsyncClient, owner: TestUser, resources: Resources, receiver_factory: StartReceiver
) -> None:
    receiver = await receiver_factory(500, Answer(502, body=b"bad gateway"), 200)
    hook = await create_webhook(client, owner, receiver.url(), retry_policy=FAST)
    event_id = await fire(resources, owner)
    await run_jobs(resources)
    assert receiver.ids() == [event_id] * 3
    assert sum(1 for hit in receiver.hits if orjson.loads(hit.body)) == 3
    delivery = await only_delivery(client, owner, hook["id"])
    assert delivery["status"] == "succeeded"
    attempts = delivery["attempts"]
    assert [a["status_code"] for a in attempts] == [500, 502, 200]
    assert [a["number"] for a in attempts] == [1, 2, 3]
    assert attempts[1]["response_body"] == "bad gateway"
    assert attempts[0]["error"] == "The receiver answered HTTP 500."
    assert attempts[0]["next_attempt_at"] is not None
    assert attempts[2]["next_attempt_at"] is None
    # Signed afresh on each attempt, always verifiable.
    assert all(verify(hook["secret"], hit) for hit in receiver.hits)
    health = (await client.get(webhook_url(hook["id"]), headers=owner.headers)).json()["data"]
    assert (health["consecutive_failures"], health["failing_since"], health["is_active"]) == (0, None, True)


async def test_a_receiver_that_never_succeeds_ends_failed_with_every_attempt_recorded(
    client: httpx.AsyncClient, owner: TestUser, resources: Resources, receiver_factory: StartReceiver
) -> None:
    receiver = await receiver_factory(default=500)
    hook = await create_webhook(client, owner, receiver.url(), retry_policy={**FAST, "max_retries": 2})
    await fire(resources, owner)
    await run_jobs(resources)
    assert len(receiver.hits) == 3
    delivery = await only_delivery(client, owner, hook["id"])
    assert (delivery["status"], delivery["attempt_count"], delivery["last_status_code"]) == ("failed", 3, 500)
    assert delivery["last_error"] == "The receiver answered HTTP 500."
    assert [a["status_code"] for a in delivery["attempts"]] == [500, 500, 500]
    assert delivery["next_attempt_at"] is None
    health = (await client.get(webhook_url(hook["id"]), headers=owner.headers)).json()["data"]
    assert health["consecutive_failures"] == 3
    assert health["failing_since"] is not None
    assert health["is_active"] is True
    failed = await client.get(
        f"{webhook_url(hook['id'])}/deliveries", params={"status": "failed"}, headers=owner.headers
    )
    assert [item["id"] for item in failed.json()["data"]] == [delivery["id"]]
    async with resources.db.sessionmaker() as session:
        job_status = (
            await session.execute(
                select(Job.status).where(Job.payload["delivery_id"].as_string() == delivery["id"])
            )
        ).scalar_one()
    assert job_status == "failed"


async def test_retry_after_is_honoured(
    client: httpx.AsyncClient, owner: TestUser, resources: Resources, receiver_factory: StartReceiver
) -> None:
    receiver = await receiver_factory(Answer(503, headers={"Retry-After": "120"}), 200)
    hook = await create_webhook(client, owner, receiver.url(), retry_policy=FAST)
    await fire(resources, owner)
    await drain(resources)  # what is due now: the first attempt only
    pending = await only_delivery(client, owner, hook["id"])
    assert pending["status"] == "pending"
    started = _time(pending["attempts"][0]["started_at"])
    assert _time(pending["next_attempt_at"]) >= started + timedelta(seconds=120)
    assert _time(pending["attempts"][0]["next_attempt_at"]) >= started + timedelta(seconds=120)
    assert await drain(resources) == 0  # not due yet, whatever the 1 s backoff says
    await run_jobs(resources)
    assert (await only_delivery(client, owner, hook["id"]))["status"] == "succeeded"


async def test_410_gone_disables_the_webhook_at_once_and_stops_its_other_deliveries(
    client: httpx.AsyncClient, owner: TestUser, resources: Resources, receiver_factory: StartReceiver
) -> None:
    receiver = await receiver_factory(default=410)
    hook = await create_webhook(client, owner, receiver.url(), retry_policy=FAST)
    await fire(resources, owner)
    await fire(resources, owner)
    await run_jobs(resources)
    assert len(receiver.hits) == 1
    statuses = sorted(item["status"] for item in await deliveries(client, owner, hook["id"]))
    assert statuses == ["cancelled", "failed"]
    data = (await client.get(webhook_url(hook["id"]), headers=owner.headers)).json()["data"]
    assert data["is_active"] is False
    assert "410" in data["disabled_reason"]
    assert data["disabled_at"] is not None
    # Nothing reaches a disabled webhook, and it cannot be tested until re-enabled.
    await fire(resources, owner)
    await run_jobs(resources)
    assert len(receiver.hits) == 1
    refused = await client.post(f"{webhook_url(hook['id'])}/test", headers=owner.headers)
    assert refused.status_code == 409
    enabled = await client.patch(webhook_url(hook["id"]), json={"is_active": True}, headers=owner.headers)
    enabled_data = enabled.json()["data"]
    assert (
        enabled_data["is_active"],
        enabled_data["disabled_reason"],
        enabled_data["consecutive_failures"],
    ) == (
        True,
        None,
        0,
    )


async def test_consecutive_failures_disable_the_webhook(
    client: httpx.AsyncClient, owner: TestUser, resources: Resources, receiver_factory: StartReceiver
) -> None:
    receiver = await receiver_factory(default=500)
    hook = await create_webhook(client, owner, receiver.url(), retry_policy={**FAST, "max_retries": 10})
    await fire(resources, owner)
    strict = dataclasses.replace(
        resources, settings=resources.settings.model_copy(update={"webhook_disable_after_failures": 3})
    )
    await run_jobs(strict)
    assert len(receiver.hits) == 3
    data = (await client.get(webhook_url(hook["id"]), headers=owner.headers)).json()["data"]
    assert data["is_active"] is False
    assert data["consecutive_failures"] == 3
    assert "3 failed delivery attempts in a row" in data["disabled_reason"]
    delivery = await only_delivery(client, owner, hook["id"])
    assert delivery["status"] == "cancelled"
    assert "Disabled after 3" in delivery["last_error"]


async def test_failing_for_too_long_disables_the_webhook(
    client: httpx.AsyncClient, owner: TestUser, resources: Resources, receiver_factory: StartReceiver
) -> None:
    receiver = await receiver_factory(default=500)
    hook = await create_webhook(client, owner, receiver.url(), retry_policy=FAST)
    await fire(resources, owner)
    impatient = dataclasses.replace(
        resources, settings=resources.settings.model_copy(update={"webhook_disable_after": timedelta(0)})
    )
    await run_jobs(impatient)
    assert len(receiver.hits) == 1
    data = (await client.get(webhook_url(hook["id"]), headers=owner.headers)).json()["data"]
    assert data["is_active"] is False
    assert "since" in data["disabled_reason"]


async def test_a_redirect_is_not_followed_and_fails_the_attempt(
    client: httpx.AsyncClient, owner: TestUser, resources: Resources, receiver_factory: StartReceiver
) -> None:
    elsewhere = await receiver_factory()
    receiver = await receiver_factory(default=Answer(302, headers={"Location": elsewhere.url("/internal")}))
    hook = await create_webhook(client, owner, receiver.url(), retry_policy={**FAST, "max_retries": 0})
    await fire(resources, owner)
    await run_jobs(resources)
    assert len(receiver.hits) == 1
    assert elsewhere.hits == []
    delivery = await only_delivery(client, owner, hook["id"])
    assert delivery["status"] == "failed"
    assert delivery["attempts"][0]["status_code"] == 302
    assert "redirects are not followed" in delivery["attempts"][0]["error"]


async def test_an_unreachable_receiver_is_a_failed_attempt_with_a_safe_reason(
    client: httpx.AsyncClient, owner: TestUser, resources: Resources, receiver_factory: StartReceiver
) -> None:
    gone = await receiver_factory()
    url = gone.url()
    await gone.stop()
    hook = await create_webhook(client, owner, url, retry_policy={**FAST, "max_retries": 0})
    await fire(resources, owner)
    await run_jobs(resources)
    attempt = (await only_delivery(client, owner, hook["id"]))["attempts"][0]
    assert (attempt["status_code"], attempt["error"]) == (None, "Could not connect to the receiver.")


async def test_a_target_refused_at_delivery_time_fails_without_retrying(
    client: httpx.AsyncClient, owner: TestUser, resources: Resources, receiver_factory: StartReceiver
) -> None:
    receiver = await receiver_factory()
    hook = await create_webhook(client, owner, receiver.url(), retry_policy=FAST)
    await fire(resources, owner)
    guarded = dataclasses.replace(
        resources, settings=resources.settings.model_copy(update={"webhooks_allow_private_targets": False})
    )
    await run_jobs(guarded)
    assert receiver.hits == []
    delivery = await only_delivery(client, owner, hook["id"])
    assert delivery["status"] == "failed"
    assert [a["error"] for a in delivery["attempts"]] == [
        "Target refused: The URL points to a private or reserved network address."
    ]


# --- Redelivery, pausing, deletion --------------------------------------------------------------


async def test_redeliver_sends_the_same_message_again_as_a_new_series(
    client: httpx.AsyncClient, owner: TestUser, resources: Resources, receiver_factory: StartReceiver
) -> None:
    receiver = await receiver_factory(500)
    hook = await create_webhook(client, owner, receiver.url(), retry_policy={**FAST, "max_retries": 0})
    event_id = await fire(resources, owner)
    await run_jobs(resources)
    failed = await only_delivery(client, owner, hook["id"])
    assert failed["status"] == "failed"
    url = f"{webhook_url(hook['id'])}/deliveries/{failed['id']}/redeliver"
    response = await client.post(url, headers=owner.headers)
    assert response.status_code == 202, response.text
    assert response.json()["data"]["status"] == "pending"
    again = await client.post(url, headers=owner.headers)
    assert again.status_code == 409
    assert single_error(again)["code"] == "CONFLICT"
    await run_jobs(resources)
    delivered = await only_delivery(client, owner, hook["id"])
    assert delivered["status"] == "succeeded"
    assert [(a["number"], a["status_code"]) for a in delivered["attempts"]] == [(1, 500), (2, 200)]
    assert receiver.ids() == [event_id, event_id]
    assert receiver.hits[0].body == receiver.hits[1].body


async def test_pausing_cancels_pending_deliveries(
    client: httpx.AsyncClient, owner: TestUser, resources: Resources, receiver_factory: StartReceiver
) -> None:
    receiver = await receiver_factory()
    hook = await create_webhook(client, owner, receiver.url())
    assert (await client.post(f"{webhook_url(hook['id'])}/test", headers=owner.headers)).status_code == 202
    await client.patch(webhook_url(hook["id"]), json={"is_active": False}, headers=owner.headers)
    await run_jobs(resources)
    assert receiver.hits == []
    delivery = await only_delivery(client, owner, hook["id"])
    assert delivery["status"] == "cancelled"
    assert delivery["attempts"] == []
    refused = await client.post(
        f"{webhook_url(hook['id'])}/deliveries/{delivery['id']}/redeliver", headers=owner.headers
    )
    assert refused.status_code == 409


async def test_deleting_a_webhook_stops_its_deliveries(
    client: httpx.AsyncClient, owner: TestUser, resources: Resources, receiver_factory: StartReceiver
) -> None:
    receiver = await receiver_factory()
    hook = await create_webhook(client, owner, receiver.url())
    await fire(resources, owner)
    assert (await client.delete(webhook_url(hook["id"]), headers=owner.headers)).status_code == 204
    await run_jobs(resources)
    assert receiver.hits == []
    async with resources.db.sessionmaker() as session:
        left = (
            await session.execute(
                select(func.count())
                .select_from(WebhookDelivery)
                .where(WebhookDelivery.webhook_id == uuid.UUID(hook["id"]))
            )
        ).scalar_one()
    assert left == 0


async def test_a_webhook_deleted_while_its_delivery_is_in_flight_ends_it_quietly(
    client: httpx.AsyncClient, owner: TestUser, resources: Resources, receiver_factory: StartReceiver
) -> None:
    receiver = await receiver_factory(Answer(200, delay=0.5))
    hook = await create_webhook(client, owner, receiver.url())
    test = await client.post(f"{webhook_url(hook['id'])}/test", headers=owner.headers)
    running = asyncio.create_task(drain(resources))
    await asyncio.wait_for(receiver.arrived.wait(), timeout=5)
    assert (await client.delete(webhook_url(hook["id"]), headers=owner.headers)).status_code == 204
    await running
    async with resources.db.sessionmaker() as session:
        job = (
            await session.execute(
                select(Job.status, Job.last_error).where(
                    Job.payload["delivery_id"].as_string() == test.json()["data"]["id"]
                )
            )
        ).one()
    assert (job.status, job.last_error) == ("succeeded", None)


async def test_deliveries_are_listed_newest_first_with_their_attempts(
    client: httpx.AsyncClient, owner: TestUser, resources: Resources, receiver_factory: StartReceiver
) -> None:
    receiver = await receiver_factory()
    hook = await create_webhook(client, owner, receiver.url())
    first = await fire(resources, owner)
    await run_jobs(resources)
    second = await fire(resources, owner, "job.failed")
    await run_jobs(resources)
    listed = await client.get(
        f"{webhook_url(hook['id'])}/deliveries", params={"per_page": 1}, headers=owner.headers
    )
    body = listed.json()
    assert [item["event_id"] for item in body["data"]] == [second]
    assert body["meta"]["pagination"]["total"] == 2
    assert len(body["data"][0]["attempts"]) == 1
    by_type = await client.get(
        f"{webhook_url(hook['id'])}/deliveries", params={"event_type": "job.succeeded"}, headers=owner.headers
    )
    assert [item["event_id"] for item in by_type.json()["data"]] == [first]
    cursor = await client.get(
        f"{webhook_url(hook['id'])}/deliveries", params={"cursor": "", "per_page": 1}, headers=owner.headers
    )
    assert cursor.json()["meta"]["pagination"]["has_next"] is True


async def test_a_large_or_binary_answer_is_kept_as_a_bounded_text_excerpt(
    client: httpx.AsyncClient, owner: TestUser, resources: Resources, receiver_factory: StartReceiver
) -> None:
    receiver = await receiver_factory(Answer(200, body=b"\x00\xff" + b"x" * 5000))
    hook = await create_webhook(client, owner, receiver.url())
    await fire(resources, owner)
    await run_jobs(resources)
    attempt = (await only_delivery(client, owner, hook["id"]))["attempts"][0]
    assert attempt["status_code"] == 200
    assert len(attempt["response_body"].encode()) <= 1024 + 8
    assert "\x00" not in attempt["response_body"]


async def test_a_rolled_back_transaction_emits_and_delivers_nothing(
    client: httpx.AsyncClient, owner: TestUser, resources: Resources, receiver_factory: StartReceiver
) -> None:
    from keel.platform.events import emit

    receiver = await receiver_factory()
    hook = await create_webhook(client, owner, receiver.url())
    async with resources.db.writer() as session:
        await emit(
            session,
            "job.succeeded",
            {"id": "never"},
            subject_type="job",
            subject_id=uuid.uuid4(),
            actor_id=owner.id,
        )
        await session.rollback()
    await run_jobs(resources)
    assert receiver.hits == []
    assert await deliveries(client, owner, hook["id"]) == []


async def test_finished_deliveries_are_purged_after_the_retention_pending_ones_stay(
    client: httpx.AsyncClient,
    owner: TestUser,
    resources: Resources,
    receiver_factory: StartReceiver,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from keel.platform.queue import enqueue
    from keel.webhooks import tasks

    receiver = await receiver_factory(200, Answer(503, headers={"Retry-After": "3600"}))
    hook = await create_webhook(client, owner, receiver.url())
    await fire(resources, owner)
    await run_jobs(resources)
    await fire(resources, owner)
    await drain(resources)  # answered 503: pending for another hour
    assert [item["status"] for item in await deliveries(client, owner, hook["id"])] == [
        "pending",
        "succeeded",
    ]
    monkeypatch.setattr(tasks, "DELIVERY_RETENTION", timedelta(seconds=-5))
    async with resources.db.writer() as session:
        await enqueue(session, tasks.PURGE_TASK, {})
        await session.commit()
    await drain(resources)
    assert [item["status"] for item in await deliveries(client, owner, hook["id"])] == ["pending"]
    await run_jobs(resources)
