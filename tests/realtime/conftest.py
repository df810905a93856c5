"""A Keel app served by an in-process uvicorn (WebSockets need a real server), its
accounts, and WebSocket helpers."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from fastapi import FastAPI
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from keel.app import create_app
from keel.platform.queue.worker import drain
from keel.platform.resources import Resources
from keel.users.models import Role
from tests.conftest import free_port, make_settings
from tests.identity import Accounts, TestUser

ALLOWED_ORIGIN = "https://app.example"
# Fast enough for tests; the rest of the limits are the defaults.
REALTIME_TEST_SETTINGS: dict[str, object] = {
    "realtime_status_seconds": 0.2,
    "cors_origins": ALLOWED_ORIGIN,
}


@asynccontextmanager
async def uvicorn_serving(app: FastAPI) -> AsyncIterator[str]:
    """``app`` on a free port, lifespan included; yields ``127.0.0.1:<port>``."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(30):
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("uvicorn stopped before it started")
                await asyncio.sleep(0.02)
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@dataclass
class Served:
    app: FastAPI
    address: str
    http: httpx.AsyncClient
    accounts: Accounts

    @property
    def resources(self) -> Resources:
        resources: Resources = self.app.state.resources
        return resources

    def ws_url(self, query: str = "") -> str:
        return f"ws://{self.address}/api/v2/ws/alerts{query}"

    async def ticket(self, user: TestUser) -> str:
        response = await self.http.post("/api/v2/auth/ws-ticket", headers=user.headers)
        assert response.status_code == 200, response.text
        ticket: str = response.json()["data"]["ticket"]
        return ticket

    async def connect(self, user: TestUser, **kwargs: Any) -> ClientConnection:
        return await connect(self.ws_url(f"?ticket={await self.ticket(user)}"), **kwargs)


@asynccontextmanager
async def serving(settings: dict[str, Any]) -> AsyncIterator[Served]:
    app = create_app(make_settings(**settings))
    async with uvicorn_serving(app) as address, httpx.AsyncClient(base_url=f"http://{address}") as http:
        try:
            yield Served(app, address, http, Accounts(app, http))
        finally:
            # Jobs the module's writes queued, so the run's shared database is left clean.
            await drain(app.state.resources)


@pytest.fixture(scope="module")
async def served(backend_settings: dict[str, Any]) -> AsyncIterator[Served]:
    async with serving({**backend_settings, **REALTIME_TEST_SETTINGS}) as result:
        yield result


@pytest.fixture(scope="module")
async def moderator(served: Served) -> TestUser:
    return await served.accounts.create(role=Role.MODERATOR)


async def receive_json(ws: ClientConnection, within: float = 2.0) -> dict[str, Any]:
    message: dict[str, Any] = orjson.loads(await asyncio.wait_for(ws.recv(), within))
    return message


async def receive_type(ws: ClientConnection, kind: str, within: float = 2.0) -> dict[str, Any]:
    """The next message of this type (skipping others, such as ``system_status``)."""
    async with asyncio.timeout(within):
        while True:
            message = await receive_json(ws, within)
            if message["type"] == kind:
                return message


class StalledClient:
    """A WebSocket client that reads nothing after the handshake, with a small receive
    buffer set before connecting (so the kernel does not grow it). The ``websockets``
    client cannot play this part: it keeps reading into its own memory."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, address: str, path: str) -> StalledClient:
        host, port = address.split(":")
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect((host, int(port)))
        sock.setblocking(False)
        reader, writer = await asyncio.open_connection(sock=sock, limit=1024 * 1024)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {address}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        status = await reader.readuntil(b"\r\n\r\n")
        assert status.startswith(b"HTTP/1.1 101"), status
        return cls(reader, writer)

    async def close_code(self) -> int:
        """Read every frame sent (unmasked, from a server) up to the close frame's code."""
        while True:
            first, second = await self.reader.readexactly(2)
            length = second & 0x7F
            if length == 126:
                (length,) = struct.unpack("!H", await self.reader.readexactly(2))
            elif length == 127:
                (length,) = struct.unpack("!Q", await self.reader.readexactly(8))
            payload = await self.reader.readexactly(length)
            if first & 0x0F == 0x8:
                self.writer.close()
                code: int = struct.unpack("!H", payload[:2])[0]
                return code


async def close_code(ws: ClientConnection, within: float = 5.0) -> int | None:
    """Read until the server closes; the code it closed with."""
    try:
        async with asyncio.timeout(within):
            while True:
                await ws.recv()
    except ConnectionClosed as exc:
        return None if exc.rcvd is None else exc.rcvd.code
