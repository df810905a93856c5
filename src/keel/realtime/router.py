"""``POST /auth/ws-ticket`` and the ``/ws/alerts`` WebSocket."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

import structlog
from fastapi import APIRouter, Depends
from starlette.responses import Response
from starlette.websockets import WebSocket

from keel.auth.dependencies import require, resolve_caller
from keel.platform.http.envelope import Envelope, ok
from keel.platform.http.errors import KeelError
from keel.platform.http.routing import KeelRoute
from keel.platform.security.principal import Principal
from keel.realtime.connection import Connection
from keel.realtime.schemas import WsTicket
from keel.realtime.service import SOCKET_PERMISSION, RealtimeHub, hub_of
from keel.realtime.tickets import TicketError

log = structlog.get_logger("keel.realtime")

router = APIRouter(prefix="/api/v2/auth", tags=["auth"], route_class=KeelRoute)
socket_router = APIRouter(prefix="/api/v2/ws", tags=["realtime"])

AlertsRead = Annotated[Principal, Depends(require(SOCKET_PERMISSION))]
NO_STORE = {"Cache-Control": "no-store"}
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
    principal, subprotocol = await _authenticate(websocket, hub)
    if principal is None or not principal.can(SOCKET_PERMISSION):
        log.info("realtime.refused", reason="unauthenticated" if principal is None else "forbidden")
        await websocket.close(1008)
        return
    await websocket.accept(subprotocol=subprotocol)
    log.info("realtime.connected", user_id=str(principal.user_id))
    await Connection(websocket, principal, hub.resources.broker, settings).run()
    log.info("realtime.disconnected", user_id=str(principal.user_id))


async def _authenticate(websocket: WebSocket, hub: RealtimeHub) -> tuple[Principal | None, str | None]:
    """A ticket (``?ticket=``), a bearer token as the subprotocols ``["bearer", token]``
    (echoed ``bearer``), or — for clients that can set headers — ``Authorization`` or
    ``X-API-Key``."""
    ticket = websocket.query_params.get("ticket")
    if ticket is not None:
        try:
            return await hub.tickets.redeem(ticket[:4096]), None
        except TicketError as exc:
            log.info("realtime.ticket_refused", reason=str(exc))
            return None, None
    scope = websocket.scope
    subprotocols: list[str] = scope.get("subprotocols") or []
    subprotocol = None
    if len(subprotocols) >= 2 and subprotocols[0].lower() == BEARER:
        subprotocol = subprotocols[0]
        # resolve_caller reads the headers; give it the token as an Authorization header.
        headers = [(b"authorization", f"Bearer {subprotocols[1]}".encode("latin-1"))]
        scope = {**scope, "headers": headers, "state": {}}
    try:
        return await resolve_caller(scope), subprotocol
    except KeelError:
        return None, None


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
