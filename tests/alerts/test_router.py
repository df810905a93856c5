"""The alerts API on both backends: who may call it, lists, acknowledgement and
resolution with their events and audit rows."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from keel.alerts.models import Alert
from keel.audit.models import AuditLog
from keel.platform.events import Event
from keel.platform.resources import Resources
from keel.users.models import Role
from tests.alerts.helpers import T0, Gauge, alerts_of, evaluate, gauge_rule
from tests.identity import Accounts, TestUser

ALERTS = "/api/v2/alerts"


async def open_alert(resources: Resources, value: float = 50) -> Alert:
    """A fresh pending alert, raised through evaluation."""
    gauge = Gauge()
    gauge.value = value
    rule = gauge_rule(gauge, for_=timedelta(0), keep_firing_for=timedelta(0))
    await evaluate(resources, rule, T0)
    (alert,) = await alerts_of(resources, rule)
    return alert


@pytest.fixture(scope="module")
async def people(accounts: Accounts) -> dict[Role, TestUser]:
    return {role: await accounts.create(role=role) for role in (Role.ADMIN, Role.MODERATOR, Role.USER)}


def routes(alert_id: uuid.UUID) -> list[tuple[str, str, dict[str, Any] | None]]:
    return [
        ("GET", ALERTS, None),
        ("GET", f"{ALERTS}/{alert_id}", None),
        ("POST", f"{ALERTS}/acknowledge", {"alert_ids": [str(alert_id)]}),
        ("POST", f"{ALERTS}/{alert_id}/resolve", None),
    ]


async def test_anonymous_callers_get_401_on_every_route(
    client: httpx.AsyncClient, resources: Resources
) -> None:
    alert = await open_alert(resources)
    for method, path, body in routes(alert.id):
        response = await client.request(method, path, json=body)
        assert response.status_code == 401, (method, path)
        assert response.json()["errors"][0]["code"] == "AUTHENTICATION_REQUIRED"


async def test_plain_users_get_403_on_every_route(
    client: httpx.AsyncClient, resources: Resources, people: dict[Role, TestUser]
) -> None:
    alert = await open_alert(resources)
    for method, path, body in routes(alert.id):
        response = await client.request(method, path, json=body, headers=people[Role.USER].headers)
        assert response.status_code == 403, (method, path)
        assert response.json()["errors"][0]["code"] == "FORBIDDEN"
    async with resources.db.reader() as session:
        assert (await session.get_one(Alert, alert.id)).status == "pending"


async def test_moderators_read_an_alert_with_its_context(
    client: httpx.AsyncClient, resources: Resources, people: dict[Role, TestUser]
) -> None:
    alert = await open_alert(resources)
    response = await client.get(f"{ALERTS}/{alert.id}", headers=people[Role.MODERATOR].headers)
    assert response.status_code == 200
    data = response.json()["data"]
    assert (data["id"], data["status"], data["severity"], data["count"]) == (
        str(alert.id),
        "pending",
        "WARNING",
        1,
    )
    assert data["context"]["probe"] is True
    assert data["context"]["thresholds"] == {"WARNING": 10.0, "CRITICAL": 100.0}


async def test_unknown_and_malformed_ids_are_404(
    client: httpx.AsyncClient, people: dict[Role, TestUser]
) -> None:
    headers = people[Role.ADMIN].headers
    for method, path in (("GET", f"{ALERTS}/{uuid.uuid4()}"), ("POST", f"{ALERTS}/{uuid.uuid4()}/resolve")):
        response = await client.request(method, path, headers=headers)
        assert response.status_code == 404
        assert response.json()["errors"][0]["code"] == "NOT_FOUND"
    # Not an id at all: no such resource, as on every other route (`/alerts/acknowledge`
    # is not an alert either, so `Allow` on it lists POST only).
    assert (await client.get(f"{ALERTS}/not-a-uuid", headers=headers)).status_code == 404
    wrong_method = await client.get(f"{ALERTS}/acknowledge", headers=headers)
    assert wrong_method.status_code == 405
    assert wrong_method.headers["allow"] == "POST"


async def test_acknowledge_splits_valid_and_invalid_ids(
    client: httpx.AsyncClient, resources: Resources, people: dict[Role, TestUser]
) -> None:
    moderator = people[Role.MODERATOR]
    pending, acknowledged, resolved = [await open_alert(resources) for _ in range(3)]
    assert (
        await client.post(
            f"{ALERTS}/acknowledge", json={"alert_ids": [str(acknowledged.id)]}, headers=moderator.headers
        )
    ).status_code == 200
    assert (
        await client.post(f"{ALERTS}/{resolved.id}/resolve", headers=moderator.headers)
    ).status_code == 200
    unknown = uuid.uuid4()

    response = await client.post(
        f"{ALERTS}/acknowledge",
        json={
            "alert_ids": [
                str(unknown),
                str(pending.id),
                str(acknowledged.id),
                str(resolved.id),
                str(pending.id),
            ]
        },
        headers=moderator.headers,
    )
    assert response.status_code == 200
    assert response.json()["data"] == {
        "acknowledged": [str(pending.id)],
        "failed": [
            {"id": str(unknown), "reason": "not_found"},
            {"id": str(acknowledged.id), "reason": "already_acknowledged"},
            {"id": str(resolved.id), "reason": "already_resolved"},
        ],
    }
    async with resources.db.reader() as session:
        stored = await session.get_one(Alert, pending.id)
    assert stored.status == "acknowledged"
    assert stored.acknowledged_by == moderator.id
    assert stored.acknowledged_at is not None


@pytest.mark.parametrize(
    "body",
    [{"alert_ids": []}, {"alert_ids": [str(uuid.uuid4())] * 101}, {"alert_ids": ["nope"]}, {}, {"ids": []}],
    ids=["empty", "101", "not-uuid", "missing", "unknown-field"],
)
async def test_acknowledge_refuses_bad_bodies(
    client: httpx.AsyncClient, people: dict[Role, TestUser], body: dict[str, Any]
) -> None:
    response = await client.post(f"{ALERTS}/acknowledge", json=body, headers=people[Role.ADMIN].headers)
    assert response.status_code == 422
    assert response.json()["errors"][0]["code"] == "VALIDATION_ERROR"


async def test_acknowledge_and_resolve_write_events_and_audit_rows(
    client: httpx.AsyncClient, resources: Resources, people: dict[Role, TestUser]
) -> None:
    admin = people[Role.ADMIN]
    alert = await open_alert(resources)
    acknowledged = await client.post(
        f"{ALERTS}/acknowledge", json={"alert_ids": [str(alert.id)]}, headers=admin.headers
    )
    assert acknowledged.json()["data"]["acknowledged"] == [str(alert.id)]
    resolved = await client.post(f"{ALERTS}/{alert.id}/resolve", headers=admin.headers)
    assert resolved.status_code == 200
    data = resolved.json()["data"]
    assert (data["status"], data["resolved_by"], data["acknowledged_by"]) == (
        "resolved",
        str(admin.id),
        str(admin.id),
    )
    again = await client.post(f"{ALERTS}/{alert.id}/resolve", headers=admin.headers)
    assert again.status_code == 409

    async with resources.db.reader() as session:
        events = (
            await session.execute(
                select(Event.type, Event.actor_id, Event.payload)
                .where(Event.subject_id == alert.id)
                .order_by(Event.id)
            )
        ).all()
        audit = (
            await session.execute(
                select(AuditLog.action, AuditLog.actor_type, AuditLog.user_id, AuditLog.request_id)
                .where(AuditLog.resource_type == "alert", AuditLog.resource_id == str(alert.id))
                .order_by(AuditLog.occurred_at, AuditLog.id)
            )
        ).all()
    assert [(kind, actor) for kind, actor, _ in events] == [
        ("alert.triggered", None),
        ("alert.acknowledged", admin.id),
        ("alert.resolved", admin.id),
    ]
    assert events[2][2]["status"] == "resolved"
    assert [(action, actor_type, user) for action, actor_type, user, _ in audit] == [
        ("alert.triggered", "system", None),
        ("alert.acknowledged", "user", admin.id),
        ("alert.resolved", "user", admin.id),
    ]
    assert audit[1][3] == acknowledged.headers["X-Request-ID"]


async def test_list_filters_newest_first_and_pages(
    client: httpx.AsyncClient, resources: Resources, people: dict[Role, TestUser]
) -> None:
    headers = people[Role.MODERATOR].headers
    critical = await open_alert(resources, value=500)
    newest = await open_alert(resources, value=500)

    response = await client.get(
        ALERTS, params={"severity": "CRITICAL", "status": "pending", "limit": 1}, headers=headers
    )
    assert response.status_code == 200
    body = response.json()
    assert [a["id"] for a in body["data"]] == [str(newest.id)]
    pagination = body["meta"]["pagination"]
    assert (pagination["limit"], pagination["offset"], pagination["has_next"], pagination["has_prev"]) == (
        1,
        0,
        True,
        False,
    )
    assert pagination["total"] >= 2
    assert "context" not in body["data"][0]
    following = await client.get(
        ALERTS, params={"severity": "CRITICAL", "status": "pending", "limit": 1, "offset": 1}, headers=headers
    )
    assert [a["id"] for a in following.json()["data"]] == [str(critical.id)]
    assert following.json()["meta"]["pagination"]["has_prev"] is True

    everything = (await client.get(ALERTS, params={"limit": 100}, headers=headers)).json()["data"]
    created = [a["created_at"] for a in everything]
    assert created == sorted(created, reverse=True)
    resolved = (await client.get(ALERTS, params={"status": "resolved"}, headers=headers)).json()["data"]
    assert all(a["status"] == "resolved" for a in resolved)


@pytest.mark.parametrize(
    "params",
    [{"limit": 0}, {"limit": 101}, {"offset": -1}, {"status": "open"}, {"severity": "CRITICAL!"}],
    ids=["limit-0", "limit-101", "offset-negative", "bad-status", "bad-severity"],
)
async def test_list_refuses_out_of_range_parameters(
    client: httpx.AsyncClient, people: dict[Role, TestUser], params: dict[str, Any]
) -> None:
    response = await client.get(ALERTS, params=params, headers=people[Role.ADMIN].headers)
    assert response.status_code == 422
    assert response.json()["errors"][0]["code"] == "VALIDATION_ERROR"


async def test_a_manual_resolution_restarts_the_for_timer(
    client: httpx.AsyncClient, resources: Resources, people: dict[Role, TestUser]
) -> None:
    gauge = Gauge()
    gauge.value = 50
    rule = gauge_rule(gauge, for_=timedelta(minutes=1), keep_firing_for=timedelta(0))
    await evaluate(resources, rule, T0)
    await evaluate(resources, rule, T0 + timedelta(minutes=1))
    (alert,) = await alerts_of(resources, rule)
    await client.post(f"{ALERTS}/{alert.id}/resolve", headers=people[Role.ADMIN].headers)
    await evaluate(resources, rule, T0 + timedelta(minutes=2))  # still breaching: waits `for` again
    assert [a.status for a in await alerts_of(resources, rule)] == ["resolved"]
    await evaluate(resources, rule, T0 + timedelta(minutes=3))
    assert [a.status for a in await alerts_of(resources, rule)] == ["resolved", "pending"]
