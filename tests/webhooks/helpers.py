"""Webhooks, events and queue runs for tests."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx

from keel.platform.db.base import utcnow
from keel.platform.events import emit
from keel.platform.queue.worker import drain
from keel.platform.resources import Resources
from tests.identity import TestUser

WEBHOOKS = "/api/v2/webhooks"
# Longer than any delay a delivery can ask for (a Retry-After is capped at a day).
STEP = timedelta(days=2)


def webhook_url(webhook_id: uuid.UUID | str) -> str:
    return f"{WEBHOOKS}/{webhook_id}"


async def create_webhook(
    client: httpx.AsyncClient, owner: TestUser, url: str, **fields: Any
) -> dict[str, Any]:
    body = {"name": "Hook", "url": url, "events": ["*"], **fields}
    response = await client.post(WEBHOOKS, json=body, headers=owner.headers)
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


async def deliveries(client: httpx.AsyncClient, owner: TestUser, webhook_id: str) -> list[dict[str, Any]]:
    response = await client.get(
        f"{webhook_url(webhook_id)}/deliveries", params={"per_page": 100}, headers=owner.headers
    )
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["data"]
    return items


async def run_jobs(resources: Resources) -> int:
    """Run every queued job, retries included, as if time ran forward: each round runs
    what is due, then the clock jumps past the longest delay. How many ran."""
    clock = utcnow()
    total = idle = 0
    while idle < 2:
        ran = await drain(resources, now=clock)
        total += ran
        idle = idle + 1 if ran == 0 else 0
        clock += STEP
    return total


async def emit_event(resources: Resources, event_type: str, payload: dict[str, Any], **about: Any) -> str:
    """Emit an event in its own committed transaction; its id."""
    async with resources.db.writer() as session:
        event_id = await emit(session, event_type, payload, **about)
        await session.commit()
    return str(event_id)
