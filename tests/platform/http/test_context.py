"""Client address under the trusted-proxy rule, and request id acceptance."""

from __future__ import annotations

import ipaddress

import pytest

from keel.platform.http.context import IPNetwork, accept_request_id, resolve_client_ip

PROXIES: tuple[IPNetwork, ...] = (
    ipaddress.ip_network("10.0.0.0/8"),
    ipaddress.ip_network("2001:db8:feed::/48"),
)


def scope(peer: str, *forwarded: str) -> dict[str, object]:
    headers = [(b"x-forwarded-for", value.encode()) for value in forwarded]
    return {"client": (peer, 40000), "headers": headers}


def test_without_trusted_proxies_the_peer_is_the_client() -> None:
    assert resolve_client_ip(scope("198.51.100.4", "1.2.3.4"), ()) == "198.51.100.4"


def test_forwarded_for_from_an_untrusted_peer_is_ignored() -> None:
    assert resolve_client_ip(scope("198.51.100.4", "1.2.3.4"), PROXIES) == "198.51.100.4"


def test_rightmost_untrusted_entry_is_the_client() -> None:
    assert resolve_client_ip(scope("10.0.0.2", "1.2.3.4, 203.0.113.9, 10.0.0.7"), PROXIES) == "203.0.113.9"


@pytest.mark.parametrize("spoofed", ["1.1.1.1", "8.8.8.8, 9.9.9.9", "garbage", ""])
def test_rotating_the_leftmost_entries_does_not_change_the_client(spoofed: str) -> None:
    header = f"{spoofed}, 203.0.113.9" if spoofed else "203.0.113.9"
    assert resolve_client_ip(scope("10.0.0.2", header), PROXIES) == "203.0.113.9"


def test_several_forwarded_for_headers_form_one_chain() -> None:
    assert resolve_client_ip(scope("10.0.0.2", "1.2.3.4", "203.0.113.9"), PROXIES) == "203.0.113.9"


def test_chain_of_only_trusted_hops_yields_the_farthest_hop() -> None:
    assert resolve_client_ip(scope("10.0.0.2", "10.9.9.9, 10.0.0.5"), PROXIES) == "10.9.9.9"


def test_malformed_entry_stops_the_chain_at_the_last_trusted_hop() -> None:
    assert resolve_client_ip(scope("10.0.0.2", "203.0.113.9, not-an-ip, 10.0.0.5"), PROXIES) == "10.0.0.5"


def test_ipv6_and_ports_are_understood() -> None:
    result = resolve_client_ip(scope("2001:db8:feed::1", "[2001:db8:beef::7]:443, 10.0.0.3:8080"), PROXIES)
    assert result == "2001:db8:beef::7"


def test_no_client_in_scope_yields_empty_address() -> None:
    assert resolve_client_ip({"client": None, "headers": []}, PROXIES) == ""


def test_safe_request_id_is_kept() -> None:
    assert accept_request_id(b"abc-123_x.y:z") == "abc-123_x.y:z"


@pytest.mark.parametrize("bad", [b"", b"a" * 129, b"sp ace", b"\xff\xfe", b"a\nb", b'"'])
def test_unsafe_request_id_is_replaced_by_a_uuid7(bad: bytes) -> None:
    generated = accept_request_id(bad)
    assert generated != bad.decode("latin-1")
    assert generated[14] == "7"  # version nibble of a UUIDv7


def test_missing_request_id_is_generated_uniquely() -> None:
    assert accept_request_id(None) != accept_request_id(None)
