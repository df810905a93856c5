"""WebSocket tickets: short-lived, single-use, bound to the caller.

A browser cannot set an ``Authorization`` header on a WebSocket, and a bearer token in
the URL would sit in proxy and access logs for its whole lifetime. A ticket is a
30-second, single-use credential made for the URL instead.

A ticket is signed (HMAC-SHA256 with a key derived from ``KEEL_SECRET_KEY``) and carries
who it is for, so any replica can verify it without a lookup. Single use is a ledger of
spent ticket ids: Redis ``SET NX PX`` when Redis is configured (one ledger for every
replica), else this process's memory — exact with one process, and at most one use per
replica within the ticket's 30 seconds when several replicas run on PostgreSQL without
Redis (a database table would close that gap; it needs a migration).
"""

from __future__ import annotations

import base64
import hmac
import secrets
import time
import uuid
from dataclasses import dataclass
from hashlib import sha256
from typing import Protocol

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

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
