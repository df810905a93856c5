"""Tickets: signed, bound to their principal, single use, short-lived."""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from keel.platform.redis_client import connect_redis
from keel.platform.security.permissions import effective_permissions
from keel.platform.security.principal import Principal
from keel.realtime.tickets import MemoryLedger, RedisLedger, SpentLedger, TicketError, Tickets
from tests import services

SECRET = secrets.token_urlsafe(48)


def moderator() -> Principal:
    return Principal(
        user_id=uuid.uuid4(),
        role="moderator",
        plan="free",
        permissions=effective_permissions("moderator"),
        session_id=uuid.uuid4(),
    )


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = connect_redis(redis_url, timeout_seconds=2)
    yield client
    await client.aclose()


@pytest.fixture(params=["memory", "redis"])
def ledger(request: pytest.FixtureRequest) -> SpentLedger:
    if request.param == "memory":
        return MemoryLedger()
    redis: Redis = request.getfixturevalue("redis")
    return RedisLedger(redis, f"{services.REDIS_PREFIX}wst:{uuid.uuid4().hex[:8]}:")


async def test_a_ticket_redeems_to_its_principal_once(ledger: SpentLedger) -> None:
    tickets = Tickets(SECRET, ledger, ttl_seconds=30)
    principal = moderator()
    ticket = tickets.issue(principal)
    assert ticket.expires_in == 30
    redeemed = await tickets.redeem(ticket.ticket)
    assert (redeemed.user_id, redeemed.role, redeemed.session_id) == (
        principal.user_id,
        principal.role,
        principal.session_id,
    )
    assert redeemed.permissions == {"alerts:read", "metrics:read"}
    with pytest.raises(TicketError, match="already used"):
        await tickets.redeem(ticket.ticket)


async def test_a_ticket_from_another_key_is_refused() -> None:
    ticket = Tickets(secrets.token_urlsafe(48), MemoryLedger(), ttl_seconds=30).issue(moderator())
    with pytest.raises(TicketError, match="invalid"):
        await Tickets(SECRET, MemoryLedger(), ttl_seconds=30).redeem(ticket.ticket)


async def test_a_tampered_ticket_is_refused() -> None:
    tickets = Tickets(SECRET, MemoryLedger(), ttl_seconds=30)
    body, _, signature = tickets.issue(moderator()).ticket.partition(".")
    other_body = tickets.issue(moderator()).ticket.partition(".")[0]
    for forged in (f"{other_body}.{signature}", f"{body}.", "garbage", f"{body}.!!!"):
        with pytest.raises(TicketError):
            await tickets.redeem(forged)


async def test_an_expired_ticket_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    tickets = Tickets(SECRET, MemoryLedger(), ttl_seconds=30)
    ticket = tickets.issue(moderator())
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now + 31)
    with pytest.raises(TicketError, match="expired"):
        await tickets.redeem(ticket.ticket)
