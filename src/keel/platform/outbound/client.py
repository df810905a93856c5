"""POST to customer-chosen URLs without letting them reach our own network.

Built on httpcore rather than an ``httpx.AsyncClient``: httpcore takes a network backend, which is
where the address is pinned, and it has none of httpx's environment proxies (a proxy would do its
own DNS lookup) or redirect following."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

import httpcore
import httpx

from keel.platform.outbound import ssrf

OutboundErrorKind = Literal["timeout", "connect", "tls", "protocol"]

# The caller may not override how the request is framed or whom it is for.
_RESERVED_HEADERS = ("host", "content-length", "transfer-encoding", "connection")


@dataclass(frozen=True, slots=True)
class OutboundResponse:
    status_code: int
    headers: httpx.Headers
    body: bytes
    duration_ms: float


class OutboundError(Exception):
    """The request did not produce an HTTP response; ``message`` is client-safe."""

    def __init__(self, kind: OutboundErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind: OutboundErrorKind = kind
        self.message = message


class _CheckedBackend(httpcore.AsyncNetworkBackend):
    """Looks the host up once per connection, checks every address and connects to a checked
    one, so no second answer can slip in between check and connect (DNS rebinding). httpcore
    still passes the URL's host name to ``start_tls``, so SNI and certificate verification use it."""

    def __init__(self, *, allow_private: bool) -> None:
        self._allow_private = allow_private
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await ssrf.resolve_host(host, allow_private=self._allow_private)
        for address in addresses[:-1]:
            with contextlib.suppress(httpcore.ConnectError):
                return await self._inner.connect_tcp(
                    str(address), port, timeout, local_address=local_address, socket_options=socket_options
                )
        return await self._inner.connect_tcp(
            str(addresses[-1]), port, timeout, local_address=local_address, socket_options=socket_options
        )

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class OutboundClient:
    def __init__(self, *, allow_private: bool, allow_http: bool, user_agent: str = "Keel-Webhooks/1") -> None:
        self._allow_http = allow_http
        self._user_agent = user_agent
        backend = _CheckedBackend(allow_private=allow_private)
        # One pool per TLS policy: a connection opened without verification must never serve a
        # call that asked for it. Limits are httpx's defaults.
        self._pools = {
            verify: httpcore.AsyncConnectionPool(
                ssl_context=httpx.create_ssl_context(verify=verify),
                max_connections=100,
                max_keepalive_connections=20,
                keepalive_expiry=5.0,
                network_backend=backend,
            )
            for verify in (True, False)
        }

    async def post(
        self,
        url: str,
        *,
        body: bytes,
        headers: Mapping[str, str],
        timeout: float,  # noqa: ASYNC109 - it bounds several steps, not one await
        verify_tls: bool = True,
        max_response_bytes: int = 1024,
    ) -> OutboundResponse:
        """POST ``body``; a 3xx is returned, never followed. ``timeout`` bounds the whole call, and
        only the first ``max_response_bytes`` of the response body are downloaded.

        The address is checked when each connection opens (see ``_CheckedBackend``), so a pooled
        connection was checked too. Raises ``ssrf.TargetRefused`` or ``OutboundError``."""
        checked = ssrf.check_url(url, allow_http=self._allow_http)
        # Built from the checked parse, so httpcore cannot read the URL differently.
        target = httpcore.URL(
            scheme=checked.raw_scheme, host=checked.raw_host, port=checked.port, target=checked.raw_path
        )
        request_headers = httpx.Headers({"user-agent": self._user_agent})
        request_headers.update(headers)
        for name in _RESERVED_HEADERS:
            request_headers.pop(name, None)
        started = time.perf_counter()
        try:
            async with asyncio.timeout(timeout):
                async with self._pools[verify_tls].stream(
                    "POST", target, headers=request_headers.raw, content=body
                ) as response:
                    response_body = await _read_at_most(response, max_response_bytes)
        except (TimeoutError, httpcore.TimeoutException):
            raise OutboundError("timeout", f"No response within {timeout:g} seconds.") from None
        except httpcore.ConnectError as exc:
            if _is_tls_failure(exc):
                raise OutboundError("tls", "The TLS handshake with the receiver failed.") from None
            raise OutboundError("connect", "Could not connect to the receiver.") from None
        except (httpcore.NetworkError, httpcore.ProtocolError):
            raise OutboundError("protocol", "The receiver did not send a valid HTTP response.") from None
        return OutboundResponse(
            status_code=response.status,
            headers=httpx.Headers(response.headers),
            body=response_body,
            duration_ms=(time.perf_counter() - started) * 1000,
        )

    async def aclose(self) -> None:
        for pool in self._pools.values():
            await pool.aclose()


def _is_tls_failure(error: BaseException) -> bool:
    # httpcore wraps the ssl error and its pool re-raises ``from None``, so walk the whole chain.
    current: BaseException | None = error
    while current is not None:
        if isinstance(current, ssl.SSLError):
            return True
        current = current.__cause__ or current.__context__
    return False


async def _read_at_most(response: httpcore.Response, limit: int) -> bytes:
    """Stops reading at ``limit``; closing the response then drops the connection, so the rest is
    never downloaded."""
    body = bytearray()
    async for chunk in response.aiter_stream():
        body += chunk
        if len(body) >= limit:
            break
    return bytes(body[:limit])
