"""Refuse outbound calls that would reach our own network (SSRF): first the URL's syntax, then
every address its host resolves to."""

from __future__ import annotations

import asyncio
import ipaddress
import socket

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_URL_LENGTH = 2048
RESOLVE_TIMEOUT = 5.0

# Ranges that are not globally routable but that ``is_global`` misses on Python 3.11, whose
# tables predate some registrations (site-local was deprecated, not reassigned).
_ALSO_FORBIDDEN_V4 = (
    ipaddress.IPv4Network("192.0.0.0/24"),  # IETF protocol assignments
    ipaddress.IPv4Network("192.88.99.0/24"),  # former 6to4 relay anycast
)
_ALSO_FORBIDDEN_V6 = (
    ipaddress.IPv6Network("fec0::/10"),  # site-local
    ipaddress.IPv6Network("64:ff9b:1::/48"),  # local-use NAT64
    ipaddress.IPv6Network("3fff::/20"),  # documentation
    ipaddress.IPv6Network("5f00::/16"),  # SRv6 segment identifiers
)
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class TargetRefused(Exception):
    """The URL may not be called; ``reason`` is a short client-safe sentence."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def check_url(url: str, *, allow_http: bool) -> httpx.URL:
    """Syntax rules only, no DNS. Raises ``TargetRefused``."""
    if len(url) > MAX_URL_LENGTH:
        raise TargetRefused(f"The URL is longer than {MAX_URL_LENGTH} characters.")
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        raise TargetRefused("The URL is not valid.") from None
    if parsed.scheme != "https" and not (allow_http and parsed.scheme == "http"):
        raise TargetRefused("The URL must use http or https." if allow_http else "The URL must use https.")
    if not parsed.host:
        raise TargetRefused("The URL has no host.")
    if parsed.userinfo:
        raise TargetRefused("The URL may not contain a user name or password.")
    if parsed.port is not None and not 1 <= parsed.port <= 65535:
        raise TargetRefused("The URL's port must be between 1 and 65535.")
    return parsed


def is_forbidden_address(address: IPAddress) -> bool:
    """True for any address that is not globally routable, including IPv6 forms that carry a
    forbidden IPv4 address."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            # The OS connects to the mapped address over IPv4, so that address decides.
            return is_forbidden_address(address.ipv4_mapped)
        if any(is_forbidden_address(embedded) for embedded in _tunnelled_ipv4(address)):
            return True
        also_forbidden = any(address in network for network in _ALSO_FORBIDDEN_V6)
    else:
        also_forbidden = any(address in network for network in _ALSO_FORBIDDEN_V4)
    return also_forbidden or address.is_multicast or not address.is_global


def _tunnelled_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    embedded: list[ipaddress.IPv4Address] = []
    if address in _IPV4_COMPATIBLE or address in _NAT64:
        embedded.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    if address.sixtofour is not None:
        embedded.append(address.sixtofour)
    if address.teredo is not None:
        embedded.extend(address.teredo)
    return embedded


async def lookup(host: str) -> list[str]:
    """The addresses the OS would connect to for ``host`` — the only name lookup in this package,
    kept module-level so tests can replace it.

    ``getaddrinfo`` also turns IP literals in every form the OS accepts (``2130706433``,
    ``0x7f.1``) into the address it would really use, so those need no parser of our own."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


async def resolve_host(host: str, *, allow_private: bool) -> list[IPAddress]:
    """Every address ``host`` resolves to, refused (``TargetRefused``) when there is none or when
    any is forbidden (unless ``allow_private``)."""
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT):
            found = await lookup(host)
    except TimeoutError:
        raise TargetRefused("The host name could not be resolved in time.") from None
    except (OSError, UnicodeError):
        raise TargetRefused("The host name could not be resolved.") from None
    addresses = list(dict.fromkeys(ipaddress.ip_address(address) for address in found))
    if not addresses:
        raise TargetRefused("The host name could not be resolved.")
    if not allow_private and any(is_forbidden_address(address) for address in addresses):
        raise TargetRefused("The URL points to a private or reserved network address.")
    return addresses


async def resolve(url: str, *, allow_private: bool, allow_http: bool) -> list[IPAddress]:
    """``check_url``, then ``resolve_host``: the checked addresses. Raises ``TargetRefused``."""
    parsed = check_url(url, allow_http=allow_http)
    return await resolve_host(parsed.raw_host.decode("ascii"), allow_private=allow_private)
