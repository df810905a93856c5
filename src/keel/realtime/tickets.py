"""WebSocket tickets: short-lived, single-use, bound to the caller.

A browser cannot set an ``Authorization`` header on a WebSocket, and a bearer token in
the URL would sit in proxy and access logs for its whole lifetime. A ticket is a
30-second, single-use credential made for the URL instead.

A ticket is signed (HMAC-SHA256 with a key derived from ``KEEL_SECRET_KEY``) and carries
who it is for, so any replica can verify it without a lookup. Single use is a ledger of
spent ticket ids shared by every replica: Redis ``SET NX PX`` when Redis is configured,
else on PostgreSQL the ``ws_tickets_spent`` table (an insert that a second use finds
taken), else — SQLite, one process — this process's memory.
"""

from __future__ import annotations

import base64
import hmac
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from hashlib import sha256
from typing import Protocol

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import String, delete
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Mapped, mapped_column

from keel.platform.db.base import Base, utcnow
from keel.platform.db.dialect import insert_for
from keel.platform.db.engine import Database
from keel.platform.security.principal import Principal
from keel.platform.security.tokens import derive_key

# Only the permissions the socket checks travel in the ticket (API keys narrow them).
CARRIED_PERMISSIONS = frozenset({"alerts:read", "metrics:read"})


class TicketError(Exception):
    """The ticket is malformed, forged, expired or already used."""


class SpentLedger(Protocol):
    async def spend(self, ticket_id: str, ttl_ms: int) -> bool:
        """True the first time ``ticket_id`` is spent, False ever after (for ``ttl_ms``)."""
        ...


class MemoryLedger:
    def __init__(self) -> None:
        self._spent: dict[str, float] = {}

    async def spend(self, ticket_id: str, ttl_ms: int) -> bool:
        now = time.monotonic()
        if len(self._spent) > 1024:
            self._spent = {key: until for key, until in self._spent.items() if until > now}
        if self._spent.get(ticket_id, 0.0) > now:
            return False
        self._spent[ticket_id] = now + ttl_ms / 1000
        return True


class RedisLedger:
    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix

    async def spend(self, ticket_id: str, ttl_ms: int) -> bool:
        try:
            return bool(await self._redis.set(self._prefix + ticket_id, b"1", nx=True, px=max(ttl_ms, 1)))
        except RedisError as exc:
            # Unverifiable single use: refuse (the client asks for another ticket).
            raise TicketError("The ticket cannot be checked now.") from exc


class SpentTicket(Base):
    __tablename__ = "ws_tickets_spent"

    ticket_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class DatabaseLedger:
    """The ``ws_tickets_spent`` table: several replicas without Redis share it. Rows
    outlive their ticket by a second; every 100th spend deletes the expired ones."""

    PURGE_EVERY = 100

    def __init__(self, db: Database) -> None:
        self._db = db
        self._spends = 0

    async def spend(self, ticket_id: str, ttl_ms: int) -> bool:
        now = utcnow()
        self._spends += 1
        try:
            async with self._db.writer() as session:
                if self._spends % self.PURGE_EVERY == 0:
                    await session.execute(delete(SpentTicket).where(SpentTicket.expires_at < now))
                statement = insert_for(session, SpentTicket).values(
                    ticket_id=ticket_id, expires_at=now + timedelta(milliseconds=ttl_ms)
                )
                result = await session.execute(statement.on_conflict_do_nothing())
                await session.commit()
        except SQLAlchemyError as exc:
            raise TicketError("The ticket cannot be checked now.") from exc
        return bool(result.rowcount)  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class Ticket:
    ticket: str
    expires_in: int


class Tickets:
    def __init__(self, secret: str, ledger: SpentLedger, *, ttl_seconds: int) -> None:
        self._key = derive_key(secret, "ws-ticket")
        self._ledger = ledger
        self._ttl = ttl_seconds

    def issue(self, principal: Principal) -> Ticket:
        claims = {
            "jti": secrets.token_urlsafe(16),
            "exp": int(time.time()) + self._ttl,
            "sub": str(principal.user_id),
            "role": principal.role,
            "plan": principal.plan,
            "perms": sorted(principal.permissions & CARRIED_PERMISSIONS),
            "sid": None if principal.session_id is None else str(principal.session_id),
            "kid": None if principal.api_key_id is None else str(principal.api_key_id),
        }
        body = _b64(orjson.dumps(claims))
        return Ticket(ticket=f"{body}.{_b64(self._sign(body))}", expires_in=self._ttl)

    async def redeem(self, ticket: str) -> Principal:
        """The principal the ticket was issued to; raises :class:`TicketError`."""
        body, _, signature = ticket.partition(".")
        try:
            valid = hmac.compare_digest(_unb64(signature), self._sign(body))
            claims = orjson.loads(_unb64(body)) if valid else None
        except (ValueError, orjson.JSONDecodeError):
            claims = None
        if not isinstance(claims, dict):
            raise TicketError("The ticket is invalid.")
        remaining_ms = int((claims["exp"] - time.time()) * 1000)
        if remaining_ms <= 0:
            raise TicketError("The ticket has expired.")
        if not await self._ledger.spend(str(claims["jti"]), remaining_ms + 1000):
            raise TicketError("The ticket was already used.")
        return Principal(
            user_id=uuid.UUID(claims["sub"]),
            role=claims["role"],
            plan=claims["plan"],
            permissions=frozenset(claims["perms"]),
            session_id=None if claims["sid"] is None else uuid.UUID(claims["sid"]),
            api_key_id=None if claims["kid"] is None else uuid.UUID(claims["kid"]),
        )

    def _sign(self, body: str) -> bytes:
        return hmac.new(self._key, body.encode(), sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
