"""The process's real-time hub: the broker's listener, tickets, and the periodic
``system_status`` message."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import orjson
import structlog
from starlette.requests import HTTPConnection

from keel.platform.db.base import utcnow
from keel.platform.resources import Resources
from keel.platform.security.principal import Principal
from keel.realtime import repository
from keel.realtime.tickets import DatabaseLedger, MemoryLedger, RedisLedger, SpentLedger, Ticket, Tickets

log = structlog.get_logger("keel.realtime")

ALERTS = "alerts"
SYSTEM_STATUS = "system_status"
# Channel -> the permission a subscriber needs.
CHANNELS: dict[str, str] = {ALERTS: "alerts:read", SYSTEM_STATUS: "metrics:read"}
SOCKET_PERMISSION = "alerts:read"


def frame(message_type: str, data: Any = None) -> bytes:
    return orjson.dumps({"type": message_type, "data": data})


class RealtimeHub:
    def __init__(self, resources: Resources) -> None:
        settings = resources.settings
        ledger: SpentLedger
        if resources.redis is not None:
            ledger = RedisLedger(resources.redis, settings.redis_key_prefix + "wst:")
        elif resources.db.is_sqlite:
            ledger = MemoryLedger()  # SQLite: one process
        else:
            ledger = DatabaseLedger(resources.db)
        self.resources = resources
        self.tickets = Tickets(settings.signing_key, ledger, ttl_seconds=settings.realtime_ticket_seconds)
        self._status_task: asyncio.Task[None] | None = None
        # Open events streams of this process (KEEL_REALTIME_MAX_STREAMS).
        self.streams: set[object] = set()

    @classmethod
    async def start(cls, resources: Resources) -> RealtimeHub:
        hub = cls(resources)
        await resources.broker.start()
        hub._status_task = asyncio.create_task(hub._send_status_periodically(), name="realtime-status")
        return hub

    async def stop(self) -> None:
        if self._status_task is not None:
            self._status_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._status_task
        await self.resources.broker.close()

    def streams_full(self) -> bool:
        return len(self.streams) >= self.resources.settings.realtime_max_streams

    def issue_ticket(self, principal: Principal) -> Ticket:
        return self.tickets.issue(principal)

    async def system_status(self) -> dict[str, Any]:
        resources = self.resources
        async with resources.db.reader() as session:
            counts = await repository.counts(session)
        cache_hit_rate = None if resources.cache is None else (await resources.cache.stats()).hit_rate
        return {
            "at": utcnow().isoformat(),
            "cache_hit_rate": cache_hit_rate,
            "active_webhooks": counts.active_webhooks,
            "pending_webhook_deliveries": counts.pending_deliveries,
            "queue_depth": counts.queue_depth,
        }

    async def _send_status_periodically(self) -> None:
        # Computed once per process for all its subscribers, and only when there are some;
        # each replica reports its own cache and the shared database's counts.
        broker = self.resources.broker
        while True:
            await asyncio.sleep(self.resources.settings.realtime_status_seconds)
            if broker.subscriber_count(SYSTEM_STATUS) == 0:
                continue
            try:
                status = await self.system_status()
            except Exception:  # the database is away: try again next period
                log.warning("realtime.status_failed", exc_info=True)
                continue
            broker.deliver_local(SYSTEM_STATUS, frame(SYSTEM_STATUS, status))


def hub_of(connection: HTTPConnection) -> RealtimeHub:
    hub: RealtimeHub = connection.app.state.realtime
    return hub
