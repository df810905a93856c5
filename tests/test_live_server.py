"""Behaviour only a real server shows: sockets, streaming, headers, the log stream."""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest

from tests.conftest import LiveServer

pytestmark = pytest.mark.live


def raw_request(server: LiveServer, head: bytes, body_chunks: list[bytes] | None = None) -> bytes:
    """Send a request over a plain socket and return what the server answered."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(head)
        try:
            for chunk in body_chunks or []:
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed early, which is the point
        received = b""
        try:
            while data := sock.recv(65536):
                received += data
                if (
                    b"\r\n\r\n" in received
                    and b'"request_id"' in received
                    and received.rstrip().endswith(b"}")
                ):
                    break
        except (ConnectionResetError, TimeoutError):
            pass
        return received


def test_no_server_banner_and_security_headers(live_server: LiveServer) -> None:
    response = httpx.get(f"{live_server.url}/health")
    assert response.status_code == 200
    assert "server" not in response.headers
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-request-id"] == response.json()["request_id"]


def test_declared_oversized_body_is_refused_before_it_is_sent(live_server: LiveServer) -> None:
    head = (
        b"POST /health HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 12582912\r\n\r\n"
    )
    answer = raw_request(live_server, head)  # no body at all: the headers are enough
    assert answer.startswith(b"HTTP/1.1 413")
    assert b'"PAYLOAD_TOO_LARGE"' in answer


def test_access_log_is_one_json_line_per_request_with_request_id(live_server: LiveServer) -> None:
    httpx.get(f"{live_server.url}/health", headers={"X-Request-ID": "live-log-check"})
    deadline = time.monotonic() + 5
    matches: list[dict[str, object]] = []
    while time.monotonic() < deadline and not matches:
        for line in live_server.log_lines():
            if "live-log-check" in line:
                matches.append(json.loads(line))
        time.sleep(0.05)
    assert len(matches) == 1
    (entry,) = matches
    assert entry["event"] == "http.request"
    assert entry["request_id"] == "live-log-check"
    assert entry["route"] == "/health"
    assert entry["status"] == 200
    assert entry["method"] == "GET"
    assert isinstance(entry["duration_ms"], float)
    assert entry["level"] == "info"


def test_every_log_line_is_json(live_server: LiveServer) -> None:
    httpx.get(f"{live_server.url}/health")
    for line in live_server.log_lines():
        json.loads(line)
