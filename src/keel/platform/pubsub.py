"""Fan-out of small messages to every process: in memory, over Redis pub/sub or over
PostgreSQL ``LISTEN/NOTIFY``.

A :class:`Broker` publishes a message (JSON bytes) on a named channel; each process
runs one listener (:meth:`Broker.start`) that hands what arrives to its local
subscribers. Delivery is at-most-once: while the listener is disconnected messages are
lost, so after every reconnection each subscriber is told to ``resync`` (re-read the
state it shows) instead.

PostgreSQL caps a notification's payload at 8,000 bytes. A message that does not fit is
replaced by the ``fallback`` the publisher gives (a reference the subscriber can fetch
by, such as an id), and dropped with an error log if there is none or it does not fit
either. Redis and memory have no such cap.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, Protocol

import asyncpg
import orjson
import structlog
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from keel.settings import Settings

log = structlog.get_logger("keel.pubsub")

# PostgreSQL refuses a NOTIFY payload of 8,000 bytes or more; the envelope adds the
# channel name.
POSTGRES_PAYLOAD_LIMIT = 7_900


class Subscriber(Protocol):
    """Called on the event loop, so it must not block: queue the message and return."""

    def deliver(self, channel: str, message: bytes) -> None: ...

    def resync(self) -> None: ...


class Backoff:
    """Exponential reconnection delays with full jitter, reset after a success."""

    def __init__(self, initial: float = 0.1, maximum: float = 30.0) -> None:
        self.initial = initial
        self.maximum = maximum
        self._next = initial

    def next_delay(self) -> float:
        delay = random.uniform(self._next / 2, self._next)  # noqa: S311 - jitter, not a secret
        self._next = min(self._next * 2, self.maximum)
        return delay

    def reset(self) -> None:
        self._next = self.initial


class Broker(ABC):
    """Local subscribers, the process's listener task, and the backend's transport."""

    name: str = "abstract"

    def __init__(self, *, reconnect_max_seconds: float = 30.0) -> None:
        self._subscribers: dict[str, set[Subscriber]] = {}
        self._task: asyncio.Task[None] | None = None
        self._backoff = Backoff(maximum=reconnect_max_seconds)
        # Set while the listener is connected and subscribed (tests and health wait on it).
        self.connected = asyncio.Event()
        self.reconnects = 0

    # --- Local side ------------------------------------------------------------------
    def subscribe(self, channel: str, subscriber: Subscriber) -> Callable[[], None]:
        """Receive ``channel``'s messages; returns the function that stops it."""
        self._subscribers.setdefault(channel, set()).add(subscriber)

        def unsubscribe() -> None:
            subscribers = self._subscribers.get(channel)
            if subscribers is not None:
                subscribers.discard(subscriber)
                if not subscribers:
                    del self._subscribers[channel]

        return unsubscribe

    def subscriber_count(self, channel: str) -> int:
        return len(self._subscribers.get(channel, ()))

    def deliver_local(self, channel: str, message: bytes) -> None:
        """Hand ``message`` to this process's subscribers of ``channel`` only."""
        for subscriber in tuple(self._subscribers.get(channel, ())):
            try:
                subscriber.deliver(channel, message)
            except Exception:  # one broken subscriber must not starve the others
                log.exception("pubsub.deliver.failed", channel=channel)

    def _resync(self) -> None:
        self.reconnects += 1
        log.warning("pubsub.resync", backend=self.name, reconnects=self.reconnects)
        notified: set[int] = set()
        for subscribers in tuple(self._subscribers.values()):
            for subscriber in tuple(subscribers):
                if id(subscriber) not in notified:
                    notified.add(id(subscriber))
                    subscriber.resync()

    # --- Publishing --------------------------------------------------------------------
    async def publish(self, channel: str, message: bytes, *, fallback: bytes | None = None) -> None:
        """Send ``message`` to ``channel``'s subscribers in every process (``fallback``
        instead where the backend cannot carry ``message``)."""
        await self._publish(channel, message, fallback)

    @abstractmethod
    async def _publish(self, channel: str, message: bytes, fallback: bytes | None) -> None: ...

    # --- Listener ----------------------------------------------------------------------
    async def start(self) -> None:
        """Start this process's listener (once; publishing needs none)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"pubsub-{self.name}")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.connected.clear()

    async def _run(self) -> None:
        first = True
        while True:
            try:
                await self._listen(first)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("pubsub.listener.lost", backend=self.name, error=f"{type(exc).__name__}: {exc}")
            self.connected.clear()
            first = False
            await asyncio.sleep(self._backoff.next_delay())

    def _ready(self, first: bool) -> None:
        """The listener is subscribed: from here on nothing is missed."""
        self._backoff.reset()
        self.connected.set()
        log.info("pubsub.listener.ready", backend=self.name, reconnected=not first)
        if not first:
            self._resync()

    @abstractmethod
    async def _listen(self, first: bool) -> None:
        """Connect, subscribe, call :meth:`_ready`, then deliver until the connection
        breaks (raise) — never return normally."""


class MemoryBroker(Broker):
    """One process: publishing is delivering."""

    name = "memory"

    async def _publish(self, channel: str, message: bytes, fallback: bytes | None) -> None:
        self.deliver_local(channel, message)

    async def start(self) -> None:
        self.connected.set()

    async def _listen(self, first: bool) -> None:  # pragma: no cover - never started
        raise NotImplementedError


class RedisBroker(Broker):
    """Redis pub/sub: channel ``<prefix><channel>``; the listener pattern-subscribes to
    ``<prefix>*`` on a connection of its own."""

    name = "redis"

    def __init__(
        self,
        url: str,
        publisher: Redis,
        *,
        prefix: str,
        timeout_seconds: float,
        reconnect_max_seconds: float = 30.0,
    ) -> None:
        super().__init__(reconnect_max_seconds=reconnect_max_seconds)
        self._url = url
        self._publisher = publisher
        self._prefix = prefix
        self._timeout = timeout_seconds
        self.connection_name = f"keel-realtime:{prefix}"

    async def _publish(self, channel: str, message: bytes, fallback: bytes | None) -> None:
        await self._publisher.publish(self._prefix + channel, message)

    async def _listen(self, first: bool) -> None:
        # No retries: redis-py would otherwise reconnect and resubscribe silently, and the
        # messages sent meanwhile would be lost without a resync.
        client = Redis.from_url(
            self._url,
            socket_connect_timeout=self._timeout,
            health_check_interval=10,
            retry=Retry(NoBackoff(), retries=0),
            # Named, so CLIENT LIST tells an operator (and a test) which connection it is.
            client_name=self.connection_name,
        )
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.psubscribe(self._prefix + "*")
            self._ready(first)
            start = len(self._prefix)
            while True:
                item = await pubsub.get_message(timeout=5.0)
                if item is None:
                    # A silent peer: ping through the pub/sub connection (redis-py only
                    # health-checks on the next read).
                    await pubsub.ping()
                    continue
                if item["type"] == "pmessage":
                    self.deliver_local(item["channel"].decode()[start:], item["data"])
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call]
            await client.aclose()


class PostgresBroker(Broker):
    """``NOTIFY <channel_name>, '{"c": channel, "m": message}'`` through the pool, and
    ``LISTEN`` on a dedicated asyncpg connection."""

    name = "postgres"

    def __init__(
        self,
        dsn: str,
        *,
        channel_name: str,
        timeout_seconds: float = 3.0,
        probe_seconds: float = 5.0,
        reconnect_max_seconds: float = 30.0,
    ) -> None:
        super().__init__(reconnect_max_seconds=reconnect_max_seconds)
        self._dsn = dsn
        self._pool: Any = None
        self._pool_lock = asyncio.Lock()
        self._channel_name = channel_name
        # pg_stat_activity.application_name of the LISTEN connection.
        self.connection_name = f"keel-realtime:{channel_name}"
        self._timeout = timeout_seconds
        self._probe = probe_seconds

    def _payload(self, channel: str, message: bytes, fallback: bytes | None) -> str | None:
        for candidate in (message, fallback):
            if candidate is None:
                continue
            payload = orjson.dumps({"c": channel, "m": orjson.Fragment(candidate)}).decode()
            if len(payload.encode()) <= POSTGRES_PAYLOAD_LIMIT:
                return payload
        return None

    async def _publish(self, channel: str, message: bytes, fallback: bytes | None) -> None:
        payload = self._payload(channel, message, fallback)
        if payload is None:
            log.error("pubsub.message_too_large", channel=channel, size=len(message))
            return
        pool = await self._publisher_pool()
        await pool.execute("SELECT pg_notify($1, $2)", self._channel_name, payload, timeout=self._timeout)

    async def _publisher_pool(self) -> Any:
        # A pool of its own rather than the SQLAlchemy engine's: publishing happens in
        # every process (workers too), and two idle connections cost nothing.
        async with self._pool_lock:
            if self._pool is None:
                self._pool = await asyncpg.create_pool(
                    self._dsn,
                    min_size=0,
                    max_size=2,
                    timeout=self._timeout,
                    max_inactive_connection_lifetime=60,
                )
            return self._pool

    async def close(self) -> None:
        await super().close()
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def _listen(self, first: bool) -> None:
        connection = await asyncpg.connect(
            self._dsn, timeout=self._timeout, server_settings={"application_name": self.connection_name}
        )
        lost = asyncio.Event()
        connection.add_termination_listener(lambda _connection: lost.set())

        def on_notify(_connection: object, _pid: int, _channel: str, payload: str) -> None:
            try:
                data = orjson.loads(payload)
                self.deliver_local(data["c"], orjson.dumps(data["m"]))
            except (orjson.JSONDecodeError, KeyError, TypeError):
                log.warning("pubsub.bad_payload", size=len(payload))

        try:
            await connection.add_listener(self._channel_name, on_notify)
            self._ready(first)
            while True:
                try:
                    await asyncio.wait_for(lost.wait(), timeout=self._probe)
                except TimeoutError:
                    # A half-open TCP connection never reports its death: ask.
                    await connection.fetchval("SELECT 1", timeout=self._timeout)
                    continue
                raise ConnectionError("the LISTEN connection was closed")
        finally:
            if not connection.is_closed():
                await connection.close(timeout=self._timeout)


def open_broker(settings: Settings, redis: Redis | None) -> Broker:
    """The broker ``KEEL_REALTIME_BACKEND`` names (see :attr:`Settings.effective_realtime_backend`)."""
    backend = settings.effective_realtime_backend
    reconnect_max = settings.realtime_reconnect_max_seconds
    if backend == "redis" and redis is not None and settings.redis_url is not None:
        return RedisBroker(
            settings.redis_url,
            redis,
            prefix=settings.redis_key_prefix + "rt:",
            timeout_seconds=max(settings.redis_timeout_ms / 1000, 1.0),
            reconnect_max_seconds=reconnect_max,
        )
    if backend == "postgres":
        return PostgresBroker(
            settings.database_url.replace("postgresql+asyncpg://", "postgresql://", 1),
            channel_name=settings.realtime_pg_channel,
            timeout_seconds=settings.db_connect_timeout,
            reconnect_max_seconds=reconnect_max,
        )
    return MemoryBroker()
