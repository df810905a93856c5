"""The outbound client against real receivers on loopback."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from keel.platform.outbound.client import OutboundClient, OutboundError
from keel.platform.outbound.ssrf import TargetRefused, resolve
from tests.platform.outbound.conftest import FakeDNS, StartReceiver
from tests.platform.outbound.receiver import issue_certificate

BODY = b'{"type": "ping"}'
HEADERS = {"content-type": "application/json", "webhook-id": "msg_1"}


async def test_the_body_and_headers_arrive(client: OutboundClient, start_receiver: StartReceiver) -> None:
    receiver = await start_receiver(status=204, body=b"")
    response = await client.post(
        receiver.url("/hooks?x=1"), body=BODY, headers={**HEADERS, "Host": "evil.test"}, timeout=5
    )
    assert response.status_code == 204
    assert response.duration_ms > 0
    [hit] = receiver.hits
    assert (hit.method, hit.target, hit.body) == ("POST", "/hooks?x=1", BODY)
    assert hit.headers["webhook-id"] == "msg_1"
    assert hit.headers["user-agent"] == "Keel-Webhooks/1"
    assert hit.headers["host"] == f"127.0.0.1:{receiver.port}"


async def test_the_response_body_is_cut_at_max_response_bytes(
    client: OutboundClient, start_receiver: StartReceiver
) -> None:
    receiver = await start_receiver(body=b"x" * (1 << 20), headers={"x-receiver": "big"})
    response = await client.post(
        receiver.url(), body=BODY, headers=HEADERS, timeout=5, max_response_bytes=1024
    )
    assert response.status_code == 200
    assert response.body == b"x" * 1024
    assert response.headers["x-receiver"] == "big"


async def test_a_redirect_is_returned_not_followed(
    client: OutboundClient, start_receiver: StartReceiver
) -> None:
    elsewhere = await start_receiver()
    redirecting = await start_receiver(status=302, headers={"location": elsewhere.url("/stolen")})
    response = await client.post(redirecting.url(), body=BODY, headers=HEADERS, timeout=5)
    assert response.status_code == 302
    assert response.headers["location"] == elsewhere.url("/stolen")
    assert elsewhere.connections == 0


async def test_a_slow_receiver_times_out_on_time(
    client: OutboundClient, start_receiver: StartReceiver
) -> None:
    receiver = await start_receiver(delay=5)
    started = time.monotonic()
    with pytest.raises(OutboundError) as error:
        await client.post(receiver.url(), body=BODY, headers=HEADERS, timeout=0.3)
    assert error.value.kind == "timeout"
    assert time.monotonic() - started < 0.3 + 0.5


async def test_the_timeout_bounds_a_body_that_trickles(
    client: OutboundClient, start_receiver: StartReceiver
) -> None:
    receiver = await start_receiver(body=b"x" * 100, byte_delay=0.05)
    started = time.monotonic()
    with pytest.raises(OutboundError) as error:
        await client.post(receiver.url(), body=BODY, headers=HEADERS, timeout=0.3)
    assert error.value.kind == "timeout"
    assert time.monotonic() - started < 0.3 + 0.5


async def test_a_closed_port_is_a_connect_error(client: OutboundClient) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(OutboundError) as error:
        await client.post(f"http://127.0.0.1:{port}/", body=BODY, headers=HEADERS, timeout=5)
    assert error.value.kind == "connect"


async def test_a_non_http_answer_is_a_protocol_error(
    client: OutboundClient, start_receiver: StartReceiver
) -> None:
    receiver = await start_receiver(raw_response=b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
    with pytest.raises(OutboundError) as error:
        await client.post(receiver.url(), body=BODY, headers=HEADERS, timeout=5)
    assert error.value.kind == "protocol"


async def test_loopback_is_refused_before_any_connection(
    start_receiver: StartReceiver, connects: list[str]
) -> None:
    receiver = await start_receiver()
    client = OutboundClient(allow_private=False, allow_http=True)
    try:
        with pytest.raises(TargetRefused):
            await client.post(receiver.url(), body=BODY, headers=HEADERS, timeout=5)
    finally:
        await client.aclose()
    assert connects == []
    assert receiver.connections == 0


async def test_http_is_refused_unless_allowed(start_receiver: StartReceiver) -> None:
    receiver = await start_receiver()
    client = OutboundClient(allow_private=True, allow_http=False)
    try:
        with pytest.raises(TargetRefused, match="https"):
            await client.post(receiver.url(), body=BODY, headers=HEADERS, timeout=5)
    finally:
        await client.aclose()
    assert receiver.connections == 0


async def test_the_client_connects_to_the_address_it_looked_up_once(
    client: OutboundClient, start_receiver: StartReceiver, fake_dns: FakeDNS, connects: list[str]
) -> None:
    receiver = await start_receiver()
    fake_dns.add("hooks.test", ["127.0.0.1"])
    response = await client.post(receiver.url(host="hooks.test"), body=BODY, headers=HEADERS, timeout=5)
    assert response.status_code == 200
    assert fake_dns.lookups == ["hooks.test"]
    assert connects == ["127.0.0.1"]
    assert receiver.hits[0].headers["host"] == f"hooks.test:{receiver.port}"


async def test_a_name_validated_as_public_that_rebinds_to_loopback_is_never_reached(
    start_receiver: StartReceiver, fake_dns: FakeDNS, connects: list[str]
) -> None:
    receiver = await start_receiver()
    fake_dns.add("rebind.test", ["93.184.215.14"], ["127.0.0.1"])
    url = receiver.url(host="rebind.test")
    await resolve(url, allow_private=False, allow_http=True)  # the check when the webhook is created
    client = OutboundClient(allow_private=False, allow_http=True)
    try:
        with pytest.raises(TargetRefused):
            await client.post(url, body=BODY, headers=HEADERS, timeout=5)
    finally:
        await client.aclose()
    assert connects == []
    assert receiver.connections == 0


async def test_each_connection_uses_the_answer_it_checked(
    start_receiver: StartReceiver, fake_dns: FakeDNS, connects: list[str]
) -> None:
    receiver = await start_receiver()
    fake_dns.add("rebind.test", ["93.184.215.14"], ["127.0.0.1"])
    url = receiver.url(host="rebind.test")
    client = OutboundClient(allow_private=False, allow_http=True)
    try:
        with pytest.raises(OutboundError):  # the public address: the test network refuses it
            await client.post(url, body=BODY, headers=HEADERS, timeout=5)
        with pytest.raises(TargetRefused):
            await client.post(url, body=BODY, headers=HEADERS, timeout=5)
    finally:
        await client.aclose()
    assert connects == ["93.184.215.14"]
    assert receiver.connections == 0


async def test_tls_is_verified_against_the_url_host_not_the_address(
    start_receiver: StartReceiver, fake_dns: FakeDNS, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server_context, ca_file = issue_certificate("hooks.test", tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    receiver = await start_receiver(tls=server_context)
    fake_dns.add("hooks.test", ["127.0.0.1"])
    fake_dns.add("other.test", ["127.0.0.1"])
    client = OutboundClient(allow_private=True, allow_http=False)
    try:
        response = await client.post(receiver.url(host="hooks.test"), body=BODY, headers=HEADERS, timeout=5)
        assert response.status_code == 200
        with pytest.raises(OutboundError) as error:
            await client.post(receiver.url(host="other.test"), body=BODY, headers=HEADERS, timeout=5)
    finally:
        await client.aclose()
    assert error.value.kind == "tls"
    assert receiver.server_names == ["hooks.test", "other.test"]
    assert len(receiver.hits) == 1


async def test_an_untrusted_certificate_fails_unless_verification_is_off(
    client: OutboundClient, start_receiver: StartReceiver, fake_dns: FakeDNS, tmp_path: Path
) -> None:
    server_context, _ca_file = issue_certificate("hooks.test", tmp_path)
    receiver = await start_receiver(tls=server_context)
    fake_dns.add("hooks.test", ["127.0.0.1"])
    url = receiver.url(host="hooks.test")
    with pytest.raises(OutboundError) as error:
        await client.post(url, body=BODY, headers=HEADERS, timeout=5)
    assert error.value.kind == "tls"
    response = await client.post(url, body=BODY, headers=HEADERS, timeout=5, verify_tls=False)
    assert response.status_code == 200
    assert receiver.server_names[-1] == "hooks.test"
