"""Which URLs and addresses outbound calls refuse. Literals and ``localhost`` resolve without DNS;
names go through the scripted resolver."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest

from keel.platform.outbound import ssrf
from keel.platform.outbound.ssrf import TargetRefused, check_url, is_forbidden_address, resolve
from tests.platform.outbound.conftest import FakeDNS


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://localhost/",
        "http://0.0.0.0/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://169.254.169.254/",
        "http://10.0.0.1/",
        "http://2130706433/",
        "http://0x7f000001/",
        "http://0x7f.1/",
        "http://[fd00::1]/",
        "http://100.64.0.1/",
        "file:///etc/passwd",
        "gopher://x/",
        "ftp://example.com/",
        "http://user:pw@example.com/",
        "https://example.com:0/",
        "https://example.com:70000/",
        "https://example.com/" + "a" * ssrf.MAX_URL_LENGTH,
        "http:///no-host",
    ],
)
async def test_resolve_refuses(url: str) -> None:
    with pytest.raises(TargetRefused) as refused:
        await resolve(url, allow_private=False, allow_http=True)
    assert refused.value.reason.endswith(".")


async def test_http_is_refused_unless_allowed() -> None:
    with pytest.raises(TargetRefused, match="https"):
        await resolve("http://93.184.215.14/", allow_private=False, allow_http=False)
    assert await resolve("http://93.184.215.14/", allow_private=False, allow_http=True) == [
        ipaddress.IPv4Address("93.184.215.14")
    ]


async def test_a_public_ip_literal_is_accepted() -> None:
    assert str(check_url("https://93.184.215.14/hook", allow_http=False)) == "https://93.184.215.14/hook"
    assert await resolve("https://93.184.215.14/", allow_private=False, allow_http=False) == [
        ipaddress.IPv4Address("93.184.215.14")
    ]


async def test_allow_private_accepts_loopback() -> None:
    addresses = await resolve("http://127.0.0.1:8080/", allow_private=True, allow_http=True)
    assert addresses == [ipaddress.IPv4Address("127.0.0.1")]


async def test_a_name_is_refused_when_any_of_its_addresses_is_forbidden(fake_dns: FakeDNS) -> None:
    fake_dns.add("mixed.test", ["93.184.215.14", "10.0.0.7"])
    with pytest.raises(TargetRefused, match="private"):
        await resolve("https://mixed.test/", allow_private=False, allow_http=False)


async def test_a_name_with_only_public_addresses_returns_them_all(fake_dns: FakeDNS) -> None:
    fake_dns.add("public.test", ["93.184.215.14", "2606:4700:4700::1111", "93.184.215.14"])
    assert await resolve("https://public.test/", allow_private=False, allow_http=False) == [
        ipaddress.IPv4Address("93.184.215.14"),
        ipaddress.IPv6Address("2606:4700:4700::1111"),
    ]


async def test_an_unknown_name_is_refused(fake_dns: FakeDNS) -> None:
    with pytest.raises(TargetRefused, match="could not be resolved"):
        await resolve("https://nowhere.test/", allow_private=True, allow_http=False)


async def test_a_name_with_no_address_is_refused(fake_dns: FakeDNS) -> None:
    fake_dns.add("empty.test", [])
    with pytest.raises(TargetRefused, match="could not be resolved"):
        await resolve("https://empty.test/", allow_private=True, allow_http=False)


async def test_a_slow_lookup_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    async def hang(host: str) -> list[str]:
        await asyncio.sleep(10)
        return []

    monkeypatch.setattr(ssrf, "lookup", hang)
    monkeypatch.setattr(ssrf, "RESOLVE_TIMEOUT", 0.05)
    with pytest.raises(TargetRefused, match="in time"):
        await resolve("https://slow.test/", allow_private=True, allow_http=False)


@pytest.mark.parametrize(
    "address",
    [
        "0.0.0.0",  # noqa: S104 - an address under test, not a bind
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "192.0.0.8",
        "192.0.2.1",
        "198.18.0.1",
        "224.0.0.1",
        "239.255.255.250",
        "240.0.0.1",
        "255.255.255.255",
        "::",
        "::1",
        "fe80::1",
        "fe80::1%eth0",
        "fc00::1",
        "fd00::1",
        "fec0::1",
        "ff02::1",
        "ff0e::1",
        "2001:db8::1",
        "100::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::127.0.0.1",  # IPv4-compatible
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
        "64:ff9b:1::1",
        "2002:7f00:1::1",  # 6to4 of 127.0.0.1
        "2002:a00:1::1",  # 6to4 of 10.0.0.1
        "2001:0:4136:e378:8000:63bf:3fff:fdd2",  # Teredo
    ],
)
def test_forbidden_addresses(address: str) -> None:
    assert is_forbidden_address(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "address",
    [
        "93.184.215.14",
        "8.8.8.8",
        "1.1.1.1",
        "2606:4700:4700::1111",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
        "2002:808:808::1",
    ],
)
def test_public_addresses(address: str) -> None:
    assert not is_forbidden_address(ipaddress.ip_address(address))
