"""Tickets: signed, bound to their principal, single use, short-lived."""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from redis.asyncio import Redis

from keel.platform.db.base import utcnow
from keel.platform.db.engine import Database
from keel.platform.redis_client import connect_redis
from keel.platform.security.permissions import effective_permissions
from keel.platform.security.principal import Principal
from keel.realtime.tickets import (
    DatabaseLedger,
    MemoryLedger,
    RedisLedger,
    SpentLedger,
    SpentTicket,
    TicketError,
    Tickets,
)
from keel.settings import Settings
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


@pytest.fixture
async def two_replicas(settings: Settings) -> AsyncIterator[tuple[Database, Database]]:
    """Two engines on the run's database, as two replicas without Redis have."""
    first, second = Database.from_settings(settings), Database.from_settings(settings)
    yield first, second
    await first.dispose()
    await second.dispose()


async def test_the_database_ledger_is_shared_by_replicas(two_replicas: tuple[Database, Database]) -> None:
    on_a, on_b = (Tickets(SECRET, DatabaseLedger(db), ttl_seconds=30) for db in two_replicas)
    ticket = on_a.issue(moderator())
    assert (await on_b.redeem(ticket.ticket)).role == "moderator"
    with pytest.raises(TicketError, match="already used"):
        await on_a.redeem(ticket.ticket)
    with pytest.raises(TicketError, match="already used"):
        await on_b.redeem(ticket.ticket)


async def test_the_database_ledger_forgets_expired_tickets(two_replicas: tuple[Database, Database]) -> None:
    db = two_replicas[0]
    ledger = DatabaseLedger(db)
    ledger.PURGE_EVERY = 1
    stale = f"stale-{uuid.uuid4().hex}"
    async with db.writer() as session:
        session.add(SpentTicket(ticket_id=stale, expires_at=utcnow() - timedelta(seconds=5)))
        await session.commit()
    assert await ledger.spend(f"fresh-{uuid.uuid4().hex}", 30_000)
    async with db.reader() as session:
        assert await session.get(SpentTicket, stale) is None
