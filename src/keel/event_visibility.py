"""Who may hear of a domain event: webhook deliveries and the events stream both ask.

Judged by what the event is about (``subject_type``), with the hearer's current access
to it. Events about anything else (a webhook test, say) go to nobody.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import ColumnElement, and_, false, or_
from sqlalchemy.ext.asyncio import AsyncSession

from keel.event_types import EventType
from keel.platform.events import Event
from keel.platform.security.principal import Principal
from keel.sharing import access
from keel.sharing.models import Level


class EventFacts(Protocol):
    """What visibility reads of an event (an :class:`Event` row or a broadcast copy)."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def type(self) -> str: ...
    @property
    def occurred_at(self) -> datetime: ...
    @property
    def actor_id(self) -> uuid.UUID | None: ...
    @property
    def subject_type(self) -> str | None: ...
    @property
    def subject_id(self) -> uuid.UUID | None: ...
    @property
    def payload(self) -> dict[str, Any]: ...


async def _sees_product(session: AsyncSession, principal: Principal, event: EventFacts) -> bool:
    if event.subject_id is None or not principal.can("products:read"):
        return False
    deleted = event.type == EventType.PRODUCT_DELETED
    level = await access.product_level_by_id(session, principal, event.subject_id, include_deleted=deleted)
    return level >= Level.VIEWER


async def _sees_folder(session: AsyncSession, principal: Principal, event: EventFacts) -> bool:
    if event.subject_id is None or not principal.can("folders:read"):
        return False
    if event.type == EventType.FOLDER_DELETED:
        # The folder and its grants are gone: its owner and admins hear of it.
        return principal.is_admin or str(event.payload.get("owner_id")) == str(principal.user_id)
    return await access.folder_level(session, principal, event.subject_id) >= Level.VIEWER


async def _sees_job(session: AsyncSession, principal: Principal, event: EventFacts) -> bool:
    # A job's events are its owner's alone (the worker sets the owner as the actor).
    return principal.can("jobs:read") and event.actor_id == principal.user_id


async def _sees_user(session: AsyncSession, principal: Principal, event: EventFacts) -> bool:
    return principal.is_admin


async def _sees_alert(session: AsyncSession, principal: Principal, event: EventFacts) -> bool:
    return principal.can("alerts:read")


_VISIBILITY: dict[str, Callable[[AsyncSession, Principal, EventFacts], Awaitable[bool]]] = {
    "product": _sees_product,
    "folder": _sees_folder,
    "job": _sees_job,
    "user": _sees_user,
    "alert": _sees_alert,
}


async def may_see(session: AsyncSession, principal: Principal, event: EventFacts) -> bool:
    check = _VISIBILITY.get(event.subject_type or "")
    return check is not None and await check(session, principal, event)


def candidates(principal: Principal) -> ColumnElement[bool]:
    """A filter on ``events`` that keeps every event :func:`may_see` could allow (and
    drops the rest in the query): the subjects the principal's permissions reach, and
    of jobs only their own."""
    clauses: list[ColumnElement[bool]] = []
    if principal.can("products:read"):
        clauses.append(Event.subject_type == "product")
    if principal.can("folders:read"):
        clauses.append(Event.subject_type == "folder")
    if principal.can("jobs:read"):
        clauses.append(and_(Event.subject_type == "job", Event.actor_id == principal.user_id))
    if principal.is_admin:
        clauses.append(Event.subject_type == "user")
    if principal.can("alerts:read"):
        clauses.append(Event.subject_type == "alert")
    return or_(*clauses) if clauses else false()
