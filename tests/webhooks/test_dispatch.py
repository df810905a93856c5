"""Which webhooks hear of an event, on both backends: the subscribed types, and only
owners who may see what the event is about (judged when it is dispatched)."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy import func, select

from keel.platform.events import Event
from keel.platform.resources import Resources
from keel.users.models import Role
from keel.webhooks import dispatch
from keel.webhooks.models import WebhookDelivery
from tests.catalog import create_folder, create_product, folder_url, product_url, share
from tests.identity import Accounts, TestUser
from tests.webhooks.conftest import StartReceiver
from tests.webhooks.helpers import create_webhook, emit_event, run_jobs
from tests.webhooks.receiver import Receiver

pytestmark = pytest.mark.usefixtures("settle_queue")


@pytest.fixture(scope="module")
async def admin(accounts: Accounts) -> TestUser:
    return await accounts.create(role=Role.ADMIN)


async def listening(
    client: httpx.AsyncClient, user: TestUser, receiver_factory: StartReceiver, events: list[str]
) -> Receiver:
    receiver = await receiver_factory()
    await create_webhook(client, user, receiver.url(), events=events)
    return receiver


def heard(receiver: Receiver, event_id: str) -> bool:
    return event_id in receiver.ids()


async def test_a_product_event_reaches_only_those_who_may_see_the_product_and_sharing_opens_it(
    client: httpx.AsyncClient, accounts: Accounts, resources: Resources, receiver_factory: StartReceiver
) -> None:
    owner, friend = await accounts.create(), await accounts.create()
    product = await create_product(client, owner)
    owners = await listening(client, owner, receiver_factory, ["product.updated"])
    friends = await listening(client, friend, receiver_factory, ["*"])
    about = {"subject_type": "product", "subject_id": uuid.UUID(product["id"]), "actor_id": owner.id}

    hidden = await emit_event(resources, "product.updated", product, **about)
    await run_jobs(resources)
    assert heard(owners, hidden)
    assert not heard(friends, hidden)

    await share(client, owner, product_url(product["id"]), friend, "viewer")
    shared = await emit_event(resources, "product.updated", product, **about)
    await run_jobs(resources)
    assert heard(owners, shared)
    assert heard(friends, shared)


async def test_a_deleted_product_is_announced_to_those_who_could_see_it(
    client: httpx.AsyncClient, accounts: Accounts, resources: Resources, receiver_factory: StartReceiver
) -> None:
    owner, friend, stranger = await accounts.create(), await accounts.create(), await accounts.create()
    folder = await create_folder(client, owner)
    product = await create_product(client, owner, folder_id=folder["id"])
    await share(client, owner, folder_url(folder["id"]), friend, "viewer")
    friends = await listening(client, friend, receiver_factory, ["product.deleted"])
    strangers = await listening(client, stranger, receiver_factory, ["product.deleted"])
    assert (await client.delete(product_url(product["id"]), headers=owner.headers)).status_code == 204
    about = {"subject_type": "product", "subject_id": uuid.UUID(product["id"]), "actor_id": owner.id}
    deleted = await emit_event(resources, "product.deleted", product, **about)
    # Any other event about the deleted product reaches nobody but admins.
    updated = await emit_event(resources, "product.updated", product, **about)
    await run_jobs(resources)
    assert heard(friends, deleted)
    assert not heard(friends, updated)
    assert not heard(strangers, deleted)


async def test_folder_events_follow_folder_access_and_a_deleted_folder_its_owner(
    client: httpx.AsyncClient, accounts: Accounts, resources: Resources, receiver_factory: StartReceiver
) -> None:
    owner, friend, stranger = await accounts.create(), await accounts.create(), await accounts.create()
    folder = await create_folder(client, owner)
    await share(client, owner, folder_url(folder["id"]), friend, "editor")
    receivers = {
        user.email: await listening(client, user, receiver_factory, ["folder.updated", "folder.deleted"])
        for user in (owner, friend, stranger)
    }
    about = {"subject_type": "folder", "subject_id": uuid.UUID(folder["id"]), "actor_id": owner.id}
    updated = await emit_event(resources, "folder.updated", folder, **about)
    await run_jobs(resources)
    assert [heard(receivers[u.email], updated) for u in (owner, friend, stranger)] == [True, True, False]

    assert (await client.delete(folder_url(folder["id"]), headers=owner.headers)).status_code == 204
    deleted = await emit_event(resources, "folder.deleted", folder, **about)
    await run_jobs(resources)
    assert [heard(receivers[u.email], deleted) for u in (owner, friend, stranger)] == [True, False, False]


async def test_user_created_reaches_admins_only(
    client: httpx.AsyncClient,
    accounts: Accounts,
    admin: TestUser,
    resources: Resources,
    receiver_factory: StartReceiver,
) -> None:
    user = await accounts.create()
    admins = await listening(client, admin, receiver_factory, ["user.created"])
    users = await listening(client, user, receiver_factory, ["*"])
    event_id = await emit_event(
        resources, "user.created", {"id": str(user.id)}, subject_type="user", subject_id=user.id
    )
    await run_jobs(resources)
    assert heard(admins, event_id)
    assert not heard(users, event_id)


async def test_job_events_reach_only_the_jobs_owner(
    client: httpx.AsyncClient,
    accounts: Accounts,
    admin: TestUser,
    resources: Resources,
    receiver_factory: StartReceiver,
) -> None:
    owner, other = await accounts.create(), await accounts.create()
    owners = await listening(client, owner, receiver_factory, ["job.failed"])
    others = await listening(client, other, receiver_factory, ["*"])
    admins = await listening(client, admin, receiver_factory, ["*"])
    event_id = await emit_event(
        resources,
        "job.failed",
        {"error": "x"},
        subject_type="job",
        subject_id=uuid.uuid4(),
        actor_id=owner.id,
    )
    await run_jobs(resources)
    assert heard(owners, event_id)
    assert not heard(others, event_id)
    assert not heard(admins, event_id)


async def test_only_the_subscribed_types_are_delivered(
    client: httpx.AsyncClient, accounts: Accounts, resources: Resources, receiver_factory: StartReceiver
) -> None:
    owner = await accounts.create()
    created_only = await listening(client, owner, receiver_factory, ["job.succeeded"])
    about = {"subject_type": "job", "subject_id": uuid.uuid4(), "actor_id": owner.id}
    wanted = await emit_event(resources, "job.succeeded", {}, **about)
    unwanted = await emit_event(resources, "job.failed", {}, **about)
    await run_jobs(resources)
    assert heard(created_only, wanted)
    assert not heard(created_only, unwanted)


async def test_an_event_without_a_known_subject_reaches_nobody(
    client: httpx.AsyncClient, admin: TestUser, resources: Resources, receiver_factory: StartReceiver
) -> None:
    admins = await listening(client, admin, receiver_factory, ["*"])
    event_id = await emit_event(resources, "product.created", {"id": "?"})
    await run_jobs(resources)
    assert not heard(admins, event_id)


async def test_a_subscriber_who_lost_the_permission_hears_nothing(
    client: httpx.AsyncClient,
    accounts: Accounts,
    admin: TestUser,
    resources: Resources,
    receiver_factory: StartReceiver,
) -> None:
    user = await accounts.create()
    receiver = await listening(client, user, receiver_factory, ["*"])
    demoted = await client.patch(
        f"/api/v2/admin/users/{user.id}", json={"role": "guest"}, headers=admin.headers
    )
    assert demoted.status_code == 200, demoted.text
    event_id = await emit_event(
        resources, "job.succeeded", {}, subject_type="job", subject_id=uuid.uuid4(), actor_id=user.id
    )
    await run_jobs(resources)
    assert not heard(receiver, event_id)


async def test_dispatching_an_event_twice_delivers_it_once(
    client: httpx.AsyncClient, accounts: Accounts, resources: Resources, receiver_factory: StartReceiver
) -> None:
    owner = await accounts.create()
    receiver = await listening(client, owner, receiver_factory, ["*"])
    event_id = await emit_event(
        resources, "job.succeeded", {}, subject_type="job", subject_id=uuid.uuid4(), actor_id=owner.id
    )
    async with resources.db.writer() as session:
        event = (await session.execute(select(Event).where(Event.id == uuid.UUID(event_id)))).scalar_one()
        assert await dispatch.dispatch(session, event) == 1
        assert await dispatch.dispatch(session, event) == 0
        await session.commit()
    await run_jobs(resources)  # the outbox dispatches it a third time
    assert receiver.ids().count(event_id) == 1
    async with resources.db.sessionmaker() as session:
        count = (
            await session.execute(
                select(func.count())
                .select_from(WebhookDelivery)
                .where(WebhookDelivery.event_id == uuid.UUID(event_id))
            )
        ).scalar_one()
    assert count == 1
