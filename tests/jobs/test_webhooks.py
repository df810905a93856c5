"""A job submitted with a webhook_url tells a real receiver on loopback how it ended:
signed per Standard Webhooks with the owner's secret, retried until a 2xx answer."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
import standardwebhooks
from fastapi import FastAPI

from keel.platform.db.base import utcnow
from keel.platform.queue.worker import drain
from tests.identity import Accounts, TestUser
from tests.jobs.conftest import JOBS, read_job, run_jobs, submit_export
from tests.jobs.receiver import Delivery, Receiver

pytestmark = pytest.mark.usefixtures("settle_queue")


@pytest.fixture
async def receiver() -> Any:
    async with Receiver() as running:
        yield running


async def webhook_secret(client: httpx.AsyncClient, user: TestUser) -> str:
    response = await client.get(f"{JOBS}/webhook-secret", headers=user.headers)
    assert response.status_code == 200
    secret: str = response.json()["data"]["secret"]
    return secret


def verified(secret: str, delivery: Delivery) -> dict[str, Any]:
    """The message, once the reference library accepts its signature."""
    message: dict[str, Any] = standardwebhooks.Webhook(secret).verify(delivery.body, delivery.headers)
    return message


async def test_a_succeeded_job_is_delivered_signed_to_its_webhook_url(
    app: FastAPI, client: httpx.AsyncClient, owner: TestUser, receiver: Receiver
) -> None:
    job_id = await submit_export(client, owner, format="ndjson", webhook_url=receiver.url)
    await submit_export(client, owner)  # no webhook_url: nothing is sent for it
    await run_jobs(app)
    assert len(receiver.deliveries) == 1
    delivery = receiver.deliveries[0]
    assert delivery.path == "/hooks/jobs"
    assert delivery.headers["content-type"] == "application/json"
    message = verified(await webhook_secret(client, owner), delivery)
    assert message["type"] == "job.succeeded"
    assert message["timestamp"].endswith("Z")
    assert message["data"] == await read_job(client, owner, job_id)
    assert message["data"]["result"]["format"] == "ndjson"


async def test_another_users_secret_does_not_verify_the_delivery(
    app: FastAPI, client: httpx.AsyncClient, owner: TestUser, stranger: TestUser, receiver: Receiver
) -> None:
    await submit_export(client, owner, webhook_url=receiver.url)
    await run_jobs(app)
    with pytest.raises(standardwebhooks.WebhookVerificationError):
        verified(await webhook_secret(client, stranger), receiver.deliveries[0])


async def test_a_failed_job_is_delivered_as_job_failed_with_its_error(
    app: FastAPI, client: httpx.AsyncClient, accounts: Accounts, admin: TestUser, receiver: Receiver
) -> None:
    leaver = await accounts.create()
    secret = await webhook_secret(client, leaver)
    job_id = await submit_export(client, leaver, webhook_url=receiver.url)
    disabled = await client.patch(
        f"/api/v2/admin/users/{leaver.id}", json={"is_active": False}, headers=admin.headers
    )
    assert disabled.status_code == 200, disabled.text
    await run_jobs(app)

    message = verified(secret, receiver.deliveries[0])
    assert message["type"] == "job.failed"
    assert message["data"]["id"] == job_id
    assert message["data"]["status"] == "failed"
    assert "disabled" in message["data"]["error"]


async def test_a_refused_delivery_is_retried_later_with_the_same_webhook_id(
    app: FastAPI, client: httpx.AsyncClient, owner: TestUser, receiver: Receiver
) -> None:
    receiver.statuses = [503]
    await submit_export(client, owner, webhook_url=receiver.url)
    await run_jobs(app)
    assert len(receiver.deliveries) == 1  # the retry waits its backoff

    await drain(app.state.resources, now=utcnow() + timedelta(minutes=5))
    first, second = receiver.deliveries
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert verified(await webhook_secret(client, owner), second)["type"] == "job.succeeded"
