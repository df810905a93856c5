"""The ticket a WebSocket client exchanges for a connection."""

from __future__ import annotations

from pydantic import Field

from keel.platform.http.envelope import Schema


class WsTicket(Schema):
    ticket: str = Field(description="Pass as `?ticket=` to `/api/v2/ws/alerts`; works once.")
    expires_in: int = Field(description="Seconds the ticket stays usable.")
