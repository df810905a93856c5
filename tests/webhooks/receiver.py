"""A real webhook receiver on 127.0.0.1: answers with scripted responses and records
every request, so deliveries are tested over the wire."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Hit:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    # Seconds to wait before answering.
    delay: float = 0.0


class Receiver:
    """Answers each request with the next scripted answer, then with ``default``."""

    def __init__(self, *script: int | Answer, default: int | Answer = 200) -> None:
        self.script = deque(_answer(item) for item in script)
        self.default = _answer(default)
        self.hits: list[Hit] = []
        # Set when a request has arrived (before it is answered).
        self.arrived = asyncio.Event()
        self._server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def then(self, *script: int | Answer) -> None:
        self.script.extend(_answer(item) for item in script)

    def ids(self) -> list[str]:
        """The `webhook-id` of every request, in order."""
        return [hit.headers["webhook-id"] for hit in self.hits]

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)

    async def stop(self) -> None:
        assert self._server is not None
        if self._server.is_serving():
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            request_line, *lines = head.split("\r\n")
            method, target, _version = request_line.split(" ", 2)
            headers = {}
            for line in filter(None, lines):
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.hits.append(Hit(method, target, headers, body))
            self.arrived.set()
            answer = self.script.popleft() if self.script else self.default
            await asyncio.sleep(answer.delay)
            response = [f"HTTP/1.1 {answer.status} Scripted", f"content-length: {len(answer.body)}"]
            response += [f"{name}: {value}" for name, value in answer.headers.items()]
            response.append("connection: close")
            writer.write(("\r\n".join(response) + "\r\n\r\n").encode() + answer.body)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


def _answer(item: int | Answer) -> Answer:
    return Answer(status=item) if isinstance(item, int) else item
