"""One accepted WebSocket: its bounded send queue, its subscriptions and its limits.

Messages reach the socket through a per-connection queue filled by the broker (which
must never wait on a client): a client that falls ``KEEL_REALTIME_SEND_QUEUE`` messages
behind is closed with 1013 (try again later) and the others never notice. A frame over
``KEEL_REALTIME_MAX_FRAME_BYTES`` closes with 1009, more than
``KEEL_REALTIME_MAX_MESSAGES_PER_SECOND`` client messages in a second with 1008.

Who is connected is checked again every ``KEEL_REALTIME_RECHECK_SECONDS``: a session
logged out, a key deleted or an account disabled closes the socket with 4001, a role
that lost a subscribed channel's permission with 4003.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import structlog
from starlette.websockets import WebSocket, WebSocketDisconnect

from keel.platform.pubsub import Broker
from keel.platform.security.principal import Principal
from keel.realtime.service import ALERTS, CHANNELS, SOCKET_PERMISSION, frame
from keel.settings import Settings

log = structlog.get_logger("keel.realtime")

TRY_AGAIN_LATER = 1013
MESSAGE_TOO_BIG = 1009
POLICY_VIOLATION = 1008
CLOSE_TIMEOUT_SECONDS = 5.0
UNAUTHENTICATED = 4001
FORBIDDEN = 4003
RESYNC = frame("resync", {"reason": "reconnected"})


class Connection:
    def __init__(
        self,
        websocket: WebSocket,
        principal: Principal,
        broker: Broker,
        settings: Settings,
        reauthenticate: Callable[[], Awaitable[Principal | None]],
    ) -> None:
        self.websocket = websocket
        self.principal = principal
        self._reauthenticate = reauthenticate
        self.broker = broker
        self.settings = settings
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=settings.realtime_send_queue)
        self.overflowed = asyncio.Event()
        self._unsubscribe: dict[str, Callable[[], None]] = {}
        self._received: deque[float] = deque()

    # --- Subscriber (called by the broker on the event loop) ---------------------------
    def deliver(self, channel: str, message: bytes) -> None:
        self.enqueue(message)

    def resync(self) -> None:
        self.enqueue(RESYNC)

    def enqueue(self, message: bytes) -> None:
        if self.overflowed.is_set():
            return
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            self.overflowed.set()

    # --- The session ---------------------------------------------------------------------
    async def run(self) -> None:
        self.subscribe(ALERTS)
        sender = asyncio.create_task(self._send_loop())
        receiver = asyncio.create_task(self._receive_loop())
        overflow = asyncio.create_task(self.overflowed.wait())
        checker = asyncio.create_task(self._check_loop())
        tasks = (sender, receiver, overflow, checker)
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for unsubscribe in self._unsubscribe.values():
                unsubscribe()
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(BaseException):
                    await task
        code: int | None = None
        if overflow in done:
            code = TRY_AGAIN_LATER
            log.warning("realtime.slow_client_closed", user_id=str(self.principal.user_id))
        else:
            for task in (receiver, checker):
                if task in done and not task.cancelled() and task.exception() is None:
                    code = task.result()
        if code is not None:
            # A stalled client cannot take the close frame either: give up on it then.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.websocket.close(code), CLOSE_TIMEOUT_SECONDS)

    def subscribe(self, channel: str) -> None:
        if channel not in self._unsubscribe:
            self._unsubscribe[channel] = self.broker.subscribe(channel, self)

    async def _check_loop(self) -> int:
        """Check who is connected every so often; the close code once they may not stay."""
        while True:
            await asyncio.sleep(self.settings.realtime_recheck_seconds)
            current = await self._reauthenticate()
            if current is None:
                log.info("realtime.credentials_lapsed", user_id=str(self.principal.user_id))
                return UNAUTHENTICATED
            needed = {SOCKET_PERMISSION, *(CHANNELS[channel] for channel in self._unsubscribe)}
            if not all(current.can(permission) for permission in needed):
                log.info("realtime.permission_lost", user_id=str(self.principal.user_id))
                return FORBIDDEN
            self.principal = current

    async def _send_loop(self) -> None:
        while True:
            message = await self.queue.get()
            await self.websocket.send_text(message.decode())

    async def _receive_loop(self) -> int | None:
        """Serve client messages; the close code when the client broke a limit, None
        when it left."""
        max_bytes = self.settings.realtime_max_frame_bytes
        while True:
            try:
                event = await self.websocket.receive()
            except WebSocketDisconnect:
                return None
            if event["type"] == "websocket.disconnect":
                return None
            raw: str | bytes | None = event.get("text")
            if raw is None:
                raw = event.get("bytes") or b""
            size = len(raw.encode()) if isinstance(raw, str) else len(raw)
            if size > max_bytes:
                return MESSAGE_TOO_BIG
            if self._flooding():
                return POLICY_VIOLATION
            self._handle(raw)

    def _flooding(self) -> bool:
        now = time.monotonic()
        window = self._received
        window.append(now)
        while window and window[0] <= now - 1.0:
            window.popleft()
        return len(window) > self.settings.realtime_max_messages_per_second

    def _handle(self, raw: str | bytes) -> None:
        try:
            message: Any = orjson.loads(raw)
        except orjson.JSONDecodeError:
            self._error("INVALID_MESSAGE", "Messages are JSON objects.")
            return
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "ping":
            self.enqueue(frame("pong", None))
        elif kind == "subscribe":
            self._subscribe_all(message.get("channels"))
        else:
            self._error("UNKNOWN_TYPE", "type must be subscribe or ping.")

    def _subscribe_all(self, channels: Any) -> None:
        if not isinstance(channels, list) or not all(isinstance(channel, str) for channel in channels):
            self._error("INVALID_MESSAGE", "channels must be a list of channel names.")
            return
        for channel in channels[: len(CHANNELS) + 8]:
            permission = CHANNELS.get(channel)
            if permission is None:
                self._error("UNKNOWN_CHANNEL", f"There is no channel {channel[:64]!r}.", channel=channel[:64])
            elif not self.principal.can(permission):
                self._error("FORBIDDEN_CHANNEL", f"Missing permission: {permission}.", channel=channel)
            else:
                self.subscribe(channel)

    def _error(self, code: str, message: str, *, channel: str | None = None) -> None:
        data: dict[str, Any] = {"code": code, "message": message}
        if channel is not None:
            data["channel"] = channel
        self.enqueue(frame("error", data))
