"""Outbound tests never leave the machine: a scripted resolver stands in for DNS where a test
needs a name, and every connection attempt is recorded, with anything but loopback refused."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpcore
import pytest

from keel.platform.outbound import ssrf
from keel.platform.outbound.client import OutboundClient
from tests.platform.outbound.receiver import Receiver

LOOPBACK = ("127.0.0.1", "::1")


class FakeDNS:
    """Scripted answers per name: each lookup takes the next answer, and the last one repeats."""

    def __init__(self) -> None:
        self.answers: dict[str, list[list[str]]] = {}
        self.lookups: list[str] = []

    def add(self, host: str, *answers: list[str]) -> None:
        self.answers[host] = list(answers)

    async def lookup(self, host: str) -> list[str]:
        self.lookups.append(host)
        if host not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        answers = self.answers[host]
        return answers.pop(0) if len(answers) > 1 else answers[0]


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> FakeDNS:
    dns = FakeDNS()
    monkeypatch.setattr(ssrf, "lookup", dns.lookup)
    return dns


@pytest.fixture(autouse=True)
def connects(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The address of every TCP connection the client attempts, in order."""
    attempts: list[str] = []
    connect_tcp = httpcore.AnyIOBackend.connect_tcp

    async def recording_connect(
        self: httpcore.AnyIOBackend, host: str, port: int, *args: Any, **kwargs: Any
    ) -> httpcore.AsyncNetworkStream:
        attempts.append(host)
        if host not in LOOPBACK:
            raise httpcore.ConnectError("the test network ends at loopback")
        return await connect_tcp(self, host, port, *args, **kwargs)

    monkeypatch.setattr(httpcore.AnyIOBackend, "connect_tcp", recording_connect)
    return attempts


StartReceiver = Callable[..., Awaitable[Receiver]]


@pytest.fixture
async def start_receiver() -> AsyncIterator[StartReceiver]:
    started: list[Receiver] = []

    async def start(**script: Any) -> Receiver:
        receiver = Receiver(**script)
        await receiver.start()
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        await receiver.stop()


@pytest.fixture
async def client() -> AsyncIterator[OutboundClient]:
    """Loopback allowed, as it must be to reach the test receivers."""
    outbound = OutboundClient(allow_private=True, allow_http=True)
    yield outbound
    await outbound.aclose()
