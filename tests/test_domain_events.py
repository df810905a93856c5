"""Domain events are written in the transaction of the change (outbox): every catalog
write records one, each with its dispatch job; a refused write records none."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from keel.platform.events import DISPATCH_TASK, Event
from keel.platform.queue import Job, JobContext, JobFailed, enqueue
from keel.platform.queue.maintenance import PROBE_TASK
from keel.platform.queue.worker import drain
from keel.tasks import registry
from keel.users.models import Role
from tests.catalog import create_folder, create_product, folder_url, product_url
from tests.identity import Accounts


async def events_about(accounts: Accounts, subject_id: str) -> list[Event]:
    async with accounts.resources.db.sessionmaker() as session:
        rows = await session.execute(
            select(Event)
            .where(Event.subject_id == uuid.UUID(subject_id))
            .order_by(Event.occurred_at, Event.id)
        )
        return list(rows.scalars())


async def dispatch_jobs_for(accounts: Accounts, events: list[Event]) -> list[Job]:
    wanted = {str(event.id) for event in events}
    async with accounts.resources.db.sessionmaker() as session:
        jobs = (await session.execute(select(Job).where(Job.kind == DISPATCH_TASK))).scalars()
        return [job for job in jobs if job.payload.get("event_id") in wanted]


async def test_a_product_s_life_is_told_by_its_events(client: httpx.AsyncClient, accounts: Accounts) -> None:
    owner = await accounts.create()
    admin = await accounts.create(role=Role.ADMIN)
    product = await create_product(client, owner, name="Lamp")
    url = product_url(product["id"])
    assert (await client.patch(url, json={"stock": 3}, headers=owner.headers)).status_code == 200
    assert (await client.delete(url, headers=owner.headers)).status_code == 204
    restored = await client.post(f"{url}/restore", headers=admin.headers)
    assert restored.status_code == 200

    events = await events_about(accounts, product["id"])
    assert [e.type for e in events] == [
        "product.created",
        "product.updated",
        "product.deleted",
        "product.restored",
    ]
    assert all(e.subject_type == "product" for e in events)
    assert [e.actor_id for e in events] == [owner.id, owner.id, owner.id, admin.id]
    assert events[0].payload["name"] == "Lamp"
    assert events[1].payload["stock"] == 3
    assert len(await dispatch_jobs_for(accounts, events)) == 4


@pytest.mark.parametrize(
    ("method", "body"),
    [("PATCH", {"price": "-1"}), ("PUT", {"name": ""}), ("PATCH", {"currency": "XXX1"})],
)
async def test_a_refused_write_records_no_event(
    client: httpx.AsyncClient, accounts: Accounts, method: str, body: dict[str, Any]
) -> None:
    owner = await accounts.create()
    product = await create_product(client, owner)
    response = await client.request(method, product_url(product["id"]), json=body, headers=owner.headers)
    assert response.status_code == 422
    assert [e.type for e in await events_about(accounts, product["id"])] == ["product.created"]


async def test_a_stale_if_match_records_no_event(client: httpx.AsyncClient, accounts: Accounts) -> None:
    owner = await accounts.create()
    product = await create_product(client, owner)
    url = product_url(product["id"])
    stale = {**owner.headers, "If-Match": '"stale"'}
    assert (await client.delete(url, headers=stale)).status_code == 412
    assert [e.type for e in await events_about(accounts, product["id"])] == ["product.created"]


async def test_folder_events(client: httpx.AsyncClient, accounts: Accounts) -> None:
    owner = await accounts.create()
    folder = await create_folder(client, owner, name="Box")
    url = folder_url(folder["id"])
    assert (await client.patch(url, json={"name": "Crate"}, headers=owner.headers)).status_code == 200
    assert (await client.delete(url, headers=owner.headers)).status_code == 204
    events = await events_about(accounts, folder["id"])
    assert [e.type for e in events] == ["folder.created", "folder.updated", "folder.deleted"]
    assert events[1].payload["name"] == "Crate"


async def test_registration_records_user_created(client: httpx.AsyncClient, accounts: Accounts) -> None:
    user = await accounts.create()
    events = await events_about(accounts, str(user.id))
    assert [e.type for e in events] == ["user.created"]
    assert events[0].payload["email"] == user.email
    assert "password" not in str(events[0].payload)


async def test_a_user_s_job_announces_how_it_ended(accounts: Accounts) -> None:
    owner = await accounts.create(login=False)
    refusing = f"test.refuse.{uuid.uuid4().hex[:8]}"

    @registry.task(refusing)
    async def refuse(ctx: JobContext) -> None:
        raise JobFailed("not today")

    resources = accounts.resources
    async with resources.db.writer() as session:
        ok = await enqueue(session, PROBE_TASK, {}, owner_id=owner.id)
        failed = await enqueue(session, refusing, {}, owner_id=owner.id)
        system = await enqueue(session, PROBE_TASK, {})
        await session.commit()
    await drain(resources)

    succeeded_events = await events_about(accounts, str(ok))
    assert [e.type for e in succeeded_events] == ["job.succeeded"]
    assert succeeded_events[0].actor_id == owner.id
    assert succeeded_events[0].payload["status"] == "succeeded"
    failed_events = await events_about(accounts, str(failed))
    assert [e.type for e in failed_events] == ["job.failed"]
    assert failed_events[0].payload["error"] == "not today"
    assert await events_about(accounts, str(system)) == []  # nobody's job: nothing to tell
