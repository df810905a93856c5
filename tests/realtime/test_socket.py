"""The alerts WebSocket: who may connect, what it answers, and the limits that close it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from sqlalchemy import update
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from keel.platform.pubsub import RedisBroker
from keel.users.models import Role, User
from tests import services
from tests.identity import TestUser
from tests.platform.pubsub.helpers import kill_redis_client
from tests.realtime.conftest import (
    ALLOWED_ORIGIN,
    REALTIME_TEST_SETTINGS,
    Served,
    StalledClient,
    close_code,
    receive_type,
    serving,
)


async def assert_refused(url: str, **kwargs: object) -> None:
    with pytest.raises(InvalidStatus) as caught:
        async with connect(url, **kwargs):  # type: ignore[arg-type]
            pass
    assert caught.value.response.status_code == 403
    # Refused before the upgrade: nothing but the HTTP refusal was sent.
    assert caught.value.response.body in (b"", None)


async def test_ticket_needs_authentication(served: Served) -> None:
    response = await served.http.post("/api/v2/auth/ws-ticket")
    assert response.status_code == 401


async def test_ticket_needs_alerts_read(served: Served) -> None:
    user = await served.accounts.create(role=Role.USER)
    response = await served.http.post("/api/v2/auth/ws-ticket", headers=user.headers)
    assert response.status_code == 403


async def test_ticket_is_short_lived_and_not_cached(served: Served, moderator: TestUser) -> None:
    response = await served.http.post("/api/v2/auth/ws-ticket", headers=moderator.headers)
    assert response.status_code == 200
    assert response.json()["data"]["expires_in"] == 30
    assert response.headers["cache-control"] == "no-store"


async def test_no_credentials_are_refused(served: Served) -> None:
    await assert_refused(served.ws_url())


async def test_a_bad_ticket_is_refused(served: Served, moderator: TestUser) -> None:
    ticket = await served.ticket(moderator)
    body, _, signature = ticket.partition(".")
    await assert_refused(served.ws_url("?ticket=not-a-ticket"))
    await assert_refused(served.ws_url(f"?ticket={body}.{signature[::-1]}"))


async def test_a_ticket_works_once(served: Served, moderator: TestUser) -> None:
    url = served.ws_url(f"?ticket={await served.ticket(moderator)}")
    async with connect(url) as ws:
        await ws.send(orjson.dumps({"type": "ping"}).decode())
        assert (await receive_type(ws, "pong"))["type"] == "pong"
    await assert_refused(url)


async def test_a_foreign_origin_is_refused(served: Served, moderator: TestUser) -> None:
    await assert_refused(
        served.ws_url(f"?ticket={await served.ticket(moderator)}"), origin="https://evil.example"
    )


async def test_an_allowed_origin_connects(served: Served, moderator: TestUser) -> None:
    url = served.ws_url(f"?ticket={await served.ticket(moderator)}")
    async with connect(url, origin=ALLOWED_ORIGIN) as ws:  # type: ignore[arg-type]
        await ws.send('{"type": "ping"}')
        await receive_type(ws, "pong")


async def test_a_bearer_token_in_the_subprotocols_connects(served: Served, moderator: TestUser) -> None:
    async with connect(served.ws_url(), subprotocols=["bearer", moderator.access_token]) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "bearer"
        await ws.send('{"type": "ping"}')
        await receive_type(ws, "pong")


async def test_a_bad_bearer_token_is_refused(served: Served) -> None:
    await assert_refused(served.ws_url(), subprotocols=["bearer", "not.a.token"])


async def test_a_caller_without_alerts_read_is_refused(served: Served) -> None:
    user = await served.accounts.create(role=Role.USER)
    await assert_refused(served.ws_url(), subprotocols=["bearer", user.access_token])


async def test_ping_is_answered_within_a_second(served: Served, moderator: TestUser) -> None:
    async with await served.connect(moderator) as ws:
        started = time.monotonic()
        await ws.send('{"type": "ping"}')
        await receive_type(ws, "pong", within=1.0)
        assert time.monotonic() - started < 1.0


async def test_an_unknown_channel_gets_an_error_naming_it(served: Served, moderator: TestUser) -> None:
    async with await served.connect(moderator) as ws:
        await ws.send(orjson.dumps({"type": "subscribe", "channels": ["nope"]}).decode())
        error = await receive_type(ws, "error")
        assert error["data"]["code"] == "UNKNOWN_CHANNEL"
        assert error["data"]["channel"] == "nope"


async def test_a_forbidden_channel_gets_an_error_naming_it(served: Served, moderator: TestUser) -> None:
    # An API key narrowed to alerts:read may watch alerts but not the system status.
    response = await served.http.post(
        "/api/v2/api-keys", headers=moderator.headers, json={"name": "alerts only", "scopes": ["alerts:read"]}
    )
    assert response.status_code == 201, response.text
    secret = response.json()["data"]["secret"]
    async with connect(served.ws_url(), subprotocols=["bearer", secret]) as ws:  # type: ignore[list-item]
        await ws.send(orjson.dumps({"type": "subscribe", "channels": ["system_status"]}).decode())
        error = await receive_type(ws, "error")
        assert error["data"]["code"] == "FORBIDDEN_CHANNEL"
        assert error["data"]["channel"] == "system_status"


async def test_system_status_is_sent_to_its_subscribers(served: Served, moderator: TestUser) -> None:
    async with await served.connect(moderator) as ws:
        await ws.send(orjson.dumps({"type": "subscribe", "channels": ["system_status"]}).decode())
        status = (await receive_type(ws, "system_status"))["data"]
        assert set(status) >= {
            "cache_hit_rate",
            "active_webhooks",
            "pending_webhook_deliveries",
            "queue_depth",
        }
        assert isinstance(status["queue_depth"], int)


async def test_alerts_published_reach_the_socket(served: Served, moderator: TestUser) -> None:
    async with await served.connect(moderator) as ws:
        await ws.send('{"type": "ping"}')
        await receive_type(ws, "pong")  # subscribed by now
        message = orjson.dumps(
            {"type": "alert", "data": {"event": "alert.triggered", "id": "1", "alert": {}}}
        )
        await served.resources.broker.publish("alerts", message)
        assert (await receive_type(ws, "alert"))["data"]["id"] == "1"


async def test_an_oversized_frame_closes_with_1009(served: Served, moderator: TestUser) -> None:
    async with await served.connect(moderator) as ws:
        await ws.send("x" * (64 * 1024 + 1))
        assert await close_code(ws) == 1009


async def test_a_flood_closes_with_1008(served: Served, moderator: TestUser) -> None:
    async with await served.connect(moderator) as ws:
        for _ in range(25):
            await ws.send('{"type": "ping"}')
        assert await close_code(ws) == 1008


async def test_a_slow_client_is_closed_while_others_get_everything(
    served: Served, moderator: TestUser
) -> None:
    slow = await StalledClient.open(
        served.address, f"/api/v2/ws/alerts?ticket={await served.ticket(moderator)}"
    )
    async with await served.connect(moderator) as fast:
        await fast.send('{"type": "ping"}')
        await receive_type(fast, "pong")
        padding = "p" * 60_000
        # 24 MB: far more than the socket buffers between the server and the stalled client.
        for index in range(400):
            message = orjson.dumps({"type": "alert", "data": {"id": str(index), "padding": padding}})
            await served.resources.broker.publish("alerts", message)
            received = await receive_type(fast, "alert")
            assert received["data"]["id"] == str(index)
    # What the slow client was sent before it was dropped ends with a 1013 close.
    async with asyncio.timeout(10):
        assert await slow.close_code() == 1013


async def test_a_broker_reconnection_tells_sockets_to_resync(
    backend_settings: dict[str, Any], redis_url: str
) -> None:
    # A Redis broker on either database backend: the memory broker has no connection to lose.
    settings = {
        **backend_settings,
        **REALTIME_TEST_SETTINGS,
        "redis_url": redis_url,
        "redis_key_prefix": services.REDIS_PREFIX,
        "realtime_backend": "redis",
    }
    async with serving(settings) as served:
        broker = served.resources.broker
        assert isinstance(broker, RedisBroker)
        assert served.resources.redis is not None
        moderator = await served.accounts.create(role=Role.MODERATOR)
        async with await served.connect(moderator) as ws:
            await ws.send('{"type": "ping"}')
            await receive_type(ws, "pong")
            await kill_redis_client(served.resources.redis, broker.connection_name)
            message = await receive_type(ws, "resync", within=5.0)
            assert message["data"] == {"reason": "reconnected"}
            # And alerts flow again afterwards.
            await broker.publish("alerts", b'{"type":"alert","data":{"id":"after"}}')
            assert (await receive_type(ws, "alert"))["data"]["id"] == "after"


async def set_account(served: Served, user: TestUser, **values: object) -> None:
    async with served.resources.db.writer() as session:
        await session.execute(update(User).where(User.id == user.id).values(**values))
        await session.commit()


@pytest.fixture(scope="module")
async def rechecking(backend_settings: dict[str, Any]) -> AsyncIterator[Served]:
    async with serving(
        {**backend_settings, **REALTIME_TEST_SETTINGS, "realtime_recheck_seconds": 0.2}
    ) as result:
        yield result


async def test_a_disabled_account_is_disconnected_with_4001(rechecking: Served) -> None:
    moderator = await rechecking.accounts.create(role=Role.MODERATOR)
    async with await rechecking.connect(moderator) as ws:
        await set_account(rechecking, moderator, is_active=False)
        assert await close_code(ws) == 4001


async def test_a_role_without_alerts_read_is_disconnected_with_4003(rechecking: Served) -> None:
    moderator = await rechecking.accounts.create(role=Role.MODERATOR)
    async with await rechecking.connect(moderator) as ws:
        await set_account(rechecking, moderator, role=Role.USER)
        assert await close_code(ws) == 4003


async def test_a_logged_out_bearer_socket_is_disconnected_with_4001(rechecking: Served) -> None:
    moderator = await rechecking.accounts.create(role=Role.MODERATOR)
    url = rechecking.ws_url()
    async with connect(url, subprotocols=["bearer", moderator.access_token]) as ws:  # type: ignore[list-item]
        response = await rechecking.http.post("/api/v2/auth/logout", headers=moderator.headers)
        assert response.status_code == 204
        assert await close_code(ws) == 4001


async def test_a_socket_in_good_standing_stays_open(rechecking: Served) -> None:
    moderator = await rechecking.accounts.create(role=Role.MODERATOR)
    async with await rechecking.connect(moderator) as ws:
        await asyncio.sleep(0.6)  # three checks
        await ws.send(orjson.dumps({"type": "ping"}).decode())
        assert (await receive_type(ws, "pong"))["type"] == "pong"
