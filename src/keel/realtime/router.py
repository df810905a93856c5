"""``POST /auth/ws-ticket``, the ``/ws/alerts`` WebSocket and ``GET /events/stream``."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated
from urllib.parse import urlsplit

import structlog
from fastapi import APIRouter, Depends, Header, Request
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.responses import Response
from starlette.websockets import WebSocket

from keel.auth.dependencies import CurrentPrincipal, authenticate_again, require, resolve_caller
from keel.platform.http.envelope import Envelope, ok
from keel.platform.http.errors import KeelError, ServiceUnavailable
from keel.platform.http.routing import KeelRoute
from keel.platform.security.principal import Principal
from keel.realtime.connection import Connection
from keel.realtime.schemas import WsTicket
from keel.realtime.service import SOCKET_PERMISSION, RealtimeHub, hub_of
from keel.realtime.stream import EventStream
from keel.realtime.tickets import TicketError
from keel.users import service as users

log = structlog.get_logger("keel.realtime")

router = APIRouter(prefix="/api/v2/auth", tags=["auth"], route_class=KeelRoute)
socket_router = APIRouter(prefix="/api/v2/ws", tags=["realtime"])
events_router = APIRouter(prefix="/api/v2/events", tags=["realtime"], route_class=KeelRoute)

AlertsRead = Annotated[Principal, Depends(require(SOCKET_PERMISSION))]
NO_STORE = {"Cache-Control": "no-store"}
# A stream client that takes no data for this long is dropped (it resumes by id).
SEND_TIMEOUT_SECONDS = 30.0
RETRY_SOON = {"Retry-After": "5"}
BEARER = "bearer"


@router.post("/ws-ticket", response_model=Envelope[WsTicket])
async def create_ws_ticket(principal: AlertsRead, hub: Annotated[RealtimeHub, Depends(hub_of)]) -> Response:
    """A single-use ticket (30 s) that opens the alerts WebSocket."""
    ticket = hub.issue_ticket(principal)
    return ok(WsTicket(ticket=ticket.ticket, expires_in=ticket.expires_in), headers=NO_STORE)


@socket_router.websocket("/alerts")
async def alerts_socket(websocket: WebSocket) -> None:
    hub = hub_of(websocket)
    settings = hub.resources.settings
    if not _origin_allowed(websocket, settings.cors_origins):
        log.info("realtime.refused", reason="origin", origin=websocket.headers.get("origin"))
        await websocket.close(1008)  # before accept: the client sees HTTP 403
        return
    principal, subprotocol, reauthenticate = await _authenticate(websocket, hub)
    if principal is None or not principal.can(SOCKET_PERMISSION):
        log.info("realtime.refused", reason="unauthenticated" if principal is None else "forbidden")
        await websocket.close(1008)
        return
    await websocket.accept(subprotocol=subprotocol)
    log.info("realtime.connected", user_id=str(principal.user_id))
    await Connection(websocket, principal, hub.resources.broker, settings, reauthenticate).run()
    log.info("realtime.disconnected", user_id=str(principal.user_id))


Reauthenticate = Callable[[], Awaitable[Principal | None]]


async def _authenticate(
    websocket: WebSocket, hub: RealtimeHub
) -> tuple[Principal | None, str | None, Reauthenticate]:
    """A ticket (``?ticket=``), a bearer token as the subprotocols ``["bearer", token]``
    (echoed ``bearer``), or — for clients that can set headers — ``Authorization`` or
    ``X-API-Key``; with the subprotocol to accept and how to check the caller again later
    (a ticket's user as they are now, never with more permissions than the ticket had;
    credentials by verifying them again)."""
    ticket = websocket.query_params.get("ticket")
    if ticket is not None:
        try:
            holder = await hub.tickets.redeem(ticket[:4096])
        except TicketError as exc:
            log.info("realtime.ticket_refused", reason=str(exc))
            return None, None, _nobody

        async def ticket_holder() -> Principal | None:
            async with hub.resources.db.reader() as session:
                current = await users.acting_principal(session, holder.user_id)
            if current is None:
                return None
            return dataclasses.replace(current, permissions=current.permissions & holder.permissions)

        return holder, None, ticket_holder
    scope = websocket.scope
    subprotocols: list[str] = scope.get("subprotocols") or []
    subprotocol = None
    if len(subprotocols) >= 2 and subprotocols[0].lower() == BEARER:
        subprotocol = subprotocols[0]
        # resolve_caller reads the headers; give it the token as an Authorization header.
        headers = [(b"authorization", f"Bearer {subprotocols[1]}".encode("latin-1"))]
        scope = {**scope, "headers": headers, "state": {}}
    try:
        principal = await resolve_caller(scope)
    except KeelError:
        return None, None, _nobody
    return principal, subprotocol, lambda: authenticate_again(scope)


async def _nobody() -> Principal | None:
    return None


def _origin_allowed(websocket: WebSocket, allowed: list[str]) -> bool:
    """No Origin: not a browser. Otherwise the configured CORS origins, or the same
    origin as the request (a page served by Keel's own host)."""
    origin = websocket.headers.get("origin")
    if origin is None:
        return True
    if origin in allowed or "*" in allowed:
        return True
    host = websocket.headers.get("host")
    return host is not None and urlsplit(origin).netloc == host


STREAM_DESCRIPTION = """\
`text/event-stream`: one SSE event per domain event (`id:` the event id, `event:` its
type, `data:` `{type, timestamp, data}` as webhooks send it), `job.progress` events
without an id, `: ping` comments every `KEEL_REALTIME_PING_SECONDS`, `reset` when a
resume cannot be served, `error` before the end of a stream whose credentials lapsed."""


@events_router.get(
    "/stream",
    response_class=EventSourceResponse,
    responses={200: {"description": STREAM_DESCRIPTION, "content": {"text/event-stream": {}}}},
)
async def stream_events(
    request: Request,
    principal: CurrentPrincipal,
    hub: Annotated[RealtimeHub, Depends(hub_of)],
    last_event_id: Annotated[str | None, Header(max_length=64)] = None,
) -> EventSourceResponse:
    """Your events as they happen (server-sent events).

    What you may see: changes to products and folders you can read, your jobs' outcomes
    and progress, alerts with `alerts:read`, new accounts as an admin. Reconnect with
    `Last-Event-ID` (browsers do) to be sent what you missed: up to 500 events of the last
    24 hours, starting a moment before that id, so skip ids you have; when that cannot be
    done you get `event: reset` — re-read what you show, and resume from its id.
    """
    if hub.streams_full():
        raise ServiceUnavailable("Too many open event streams; retry in a moment.", headers=RETRY_SOON)
    stream = EventStream(principal, hub.resources, lambda: authenticate_again(request.scope))

    async def events() -> AsyncIterator[ServerSentEvent]:
        # Counted from the first read: a response abandoned before it starts never runs
        # this generator, so it must not be counted in the handler.
        hub.streams.add(stream)
        try:
            async for event in stream.run(last_event_id):
                yield event
        finally:
            hub.streams.discard(stream)

    ping = hub.resources.settings.realtime_ping_seconds
    return EventSourceResponse(events(), ping=ping, send_timeout=SEND_TIMEOUT_SECONDS)
