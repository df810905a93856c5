"""Queries for webhooks, deliveries and attempts. A webhook is only ever read through its
owner (every statement here that takes a caller filters on ``owner_id``), so another
user's webhook or delivery is simply not found."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Row,
    Select,
    String,
    delete,
    func,
    insert,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from keel.platform.http.listing import ListParams, SortField, Sorting
from keel.platform.http.pagination import Page
from keel.webhooks.models import DeliveryStatus, Webhook, WebhookAttempt, WebhookDelivery
from keel.webhooks.schemas import WILDCARD, DeliveryFilters

Rows = Row[*tuple[Any, ...]]

# What the API shows: never the secrets.
COLUMNS = (
    Webhook.id,
    Webhook.name,
    Webhook.url,
    Webhook.description,
    Webhook.events,
    Webhook.is_active,
    Webhook.retry_policy,
    Webhook.timeout_seconds,
    Webhook.ssl_verify,
    Webhook.consecutive_failures,
    Webhook.failing_since,
    Webhook.disabled_at,
    Webhook.disabled_reason,
    Webhook.previous_secret_expires_at,
    Webhook.owner_id,
    Webhook.version,
    Webhook.created_at,
    Webhook.updated_at,
)
SORTING = Sorting(
    {
        "name": SortField(Webhook.name, "str"),
        "created_at": SortField(Webhook.created_at, "datetime"),
        "updated_at": SortField(Webhook.updated_at, "datetime"),
    },
    default="-created_at",
    tiebreak=Webhook.id,
)

DELIVERY_COLUMNS = (
    WebhookDelivery.id,
    WebhookDelivery.webhook_id,
    WebhookDelivery.event_id,
    WebhookDelivery.event_type,
    WebhookDelivery.occurred_at,
    WebhookDelivery.payload,
    WebhookDelivery.status,
    WebhookDelivery.next_attempt_at,
    WebhookDelivery.last_status_code,
    WebhookDelivery.last_error,
    WebhookDelivery.created_at,
    WebhookDelivery.finished_at,
    WebhookDelivery.series,
)
DELIVERY_SORTING = Sorting(
    {"created_at": SortField(WebhookDelivery.created_at, "datetime")},
    default="-created_at",
    tiebreak=WebhookDelivery.id,
)
ATTEMPT_COLUMNS = (
    WebhookAttempt.delivery_id,
    WebhookAttempt.number,
    WebhookAttempt.started_at,
    WebhookAttempt.duration_ms,
    WebhookAttempt.status_code,
    WebhookAttempt.error,
    WebhookAttempt.response_body,
    WebhookAttempt.next_attempt_at,
)


# --- Subscriptions ---------------------------------------------------------------------


def owned(owner_id: uuid.UUID) -> Select[*tuple[Any, ...]]:
    return select(*COLUMNS).where(Webhook.owner_id == owner_id)


async def list_page(
    session: AsyncSession, statement: Select[*tuple[Any, ...]], params: ListParams, sorting: Sorting
) -> Page[Rows]:
    total = (
        await session.execute(select(func.count()).select_from(statement.order_by(None).subquery()))
    ).scalar_one()
    page = params.page
    if page.offset >= total:
        return Page([], total, page)
    ordered = statement.order_by(*sorting.order_by(params.sort)).limit(page.limit).offset(page.offset)
    return Page(list((await session.execute(ordered)).all()), total, page)


async def list_after(
    session: AsyncSession, statement: Select[*tuple[Any, ...]], params: ListParams, sorting: Sorting
) -> tuple[list[Rows], str | None]:
    after = sorting.after_cursor(params.cursor, params.sort)
    if after is not None:
        statement = statement.where(after)
    ordered = statement.order_by(*sorting.order_by(params.sort)).limit(params.per_page + 1)
    return sorting.cut(list((await session.execute(ordered)).all()), params.sort, params.per_page)


async def get_owned(
    session: AsyncSession, owner_id: uuid.UUID, webhook_id: uuid.UUID, *, for_update: bool = False
) -> Rows | None:
    statement = owned(owner_id).where(Webhook.id == webhook_id)
    if for_update:
        statement = statement.with_for_update(of=Webhook)
    return (await session.execute(statement)).one_or_none()


async def count_owned(session: AsyncSession, owner_id: uuid.UUID) -> int:
    counted = select(func.count()).select_from(Webhook).where(Webhook.owner_id == owner_id)
    return int((await session.execute(counted)).scalar_one())


async def lock_owner(session: AsyncSession, owner_id: uuid.UUID) -> None:
    """Serialise one user's webhook creations until the transaction ends, so two at once
    cannot both pass the quota. SQLite's write transaction is exclusive already."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
            {"key": f"keel.webhooks.create:{owner_id}"},
        )


async def insert_webhook(session: AsyncSession, values: dict[str, Any]) -> Rows:
    return (await session.execute(insert(Webhook).values(**values).returning(*COLUMNS))).one()


async def update_webhook(
    session: AsyncSession, webhook_id: uuid.UUID, version: int, values: dict[str, Any], now: datetime
) -> Rows | None:
    """Apply ``values`` if the webhook is still at ``version``, bumping it in the same statement."""
    result = await session.execute(
        update(Webhook)
        .where(Webhook.id == webhook_id, Webhook.version == version)
        .values(**values, version=Webhook.version + 1, updated_at=now)
        .returning(*COLUMNS)
    )
    return result.one_or_none()


async def delete_webhook(session: AsyncSession, webhook_id: uuid.UUID, version: int) -> bool:
    result = await session.execute(
        delete(Webhook).where(Webhook.id == webhook_id, Webhook.version == version).returning(Webhook.id)
    )
    return result.one_or_none() is not None


async def get_secrets(session: AsyncSession, webhook_id: uuid.UUID) -> Rows:
    statement = select(Webhook.secret, Webhook.previous_secret, Webhook.previous_secret_expires_at).where(
        Webhook.id == webhook_id
    )
    return (await session.execute(statement)).one()


# --- Delivery health ---------------------------------------------------------------------


async def record_failure(session: AsyncSession, webhook_id: uuid.UUID, now: datetime) -> Rows | None:
    """One more failed attempt in a row (atomic: deliveries to one webhook run in
    parallel); the run's count and start, or None if the webhook is gone."""
    result = await session.execute(
        update(Webhook)
        .where(Webhook.id == webhook_id)
        .values(
            consecutive_failures=Webhook.consecutive_failures + 1,
            failing_since=func.coalesce(Webhook.failing_since, now),
            version=Webhook.version + 1,
            updated_at=now,
        )
        .returning(Webhook.consecutive_failures, Webhook.failing_since, Webhook.is_active)
    )
    return result.one_or_none()


async def record_success(session: AsyncSession, webhook_id: uuid.UUID, now: datetime) -> None:
    await session.execute(
        update(Webhook)
        .where(Webhook.id == webhook_id, Webhook.consecutive_failures > 0)
        .values(consecutive_failures=0, failing_since=None, version=Webhook.version + 1, updated_at=now)
    )


async def disable(session: AsyncSession, webhook_id: uuid.UUID, reason: str, now: datetime) -> bool:
    """Switch an active webhook off with a reason; False if it was already off (or gone)."""
    result = await session.execute(
        update(Webhook)
        .where(Webhook.id == webhook_id, Webhook.is_active.is_(True))
        .values(
            is_active=False,
            disabled_at=now,
            disabled_reason=reason,
            version=Webhook.version + 1,
            updated_at=now,
        )
        .returning(Webhook.id)
    )
    return result.one_or_none() is not None


async def cancel_pending(session: AsyncSession, webhook_id: uuid.UUID, reason: str, now: datetime) -> None:
    """Stop a webhook's pending deliveries; their queued jobs find them cancelled and stop."""
    await session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.webhook_id == webhook_id,
            WebhookDelivery.status == DeliveryStatus.PENDING.value,
        )
        .values(
            status=DeliveryStatus.CANCELLED.value,
            last_error=reason,
            next_attempt_at=None,
            finished_at=now,
            updated_at=now,
        )
    )


# --- Dispatch ----------------------------------------------------------------------------


class _Subscribes(FunctionElement[bool]):
    """``events`` names this type or ``*``: JSONB containment on PostgreSQL (served by the
    GIN index), ``json_each`` on SQLite."""

    type = Boolean()
    inherit_cache = True
    name = "subscribes"


@compiles(_Subscribes, "postgresql")
def _subscribes_postgresql(element: _Subscribes, compiler: SQLCompiler, **kw: Any) -> str:
    column, event_type = (compiler.process(clause, **kw) for clause in element.clauses)
    return (
        f"({column} @> jsonb_build_array(CAST({event_type} AS TEXT)) "
        f"OR {column} @> jsonb_build_array('{WILDCARD}'))"
    )


@compiles(_Subscribes, "sqlite")
def _subscribes_sqlite(element: _Subscribes, compiler: SQLCompiler, **kw: Any) -> str:
    column, event_type = (compiler.process(clause, **kw) for clause in element.clauses)
    # Both parts are compiled SQL elements; the type is a bound parameter.
    return (
        f"EXISTS (SELECT 1 FROM json_each({column}) "  # noqa: S608
        f"WHERE json_each.value IN ({event_type}, '{WILDCARD}'))"
    )


def _subscribes(event_type: str) -> ColumnElement[bool]:
    return _Subscribes(Webhook.events, literal(event_type, String()))


async def subscribers(session: AsyncSession, event_type: str) -> list[Rows]:
    """Active webhooks that take this event type: id, owner, retry policy."""
    statement = (
        select(Webhook.id, Webhook.owner_id, Webhook.retry_policy)
        .where(Webhook.is_active.is_(True), _subscribes(event_type))
        .order_by(Webhook.owner_id, Webhook.id)
    )
    return list((await session.execute(statement)).all())


async def insert_deliveries(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> set[uuid.UUID]:
    """Insert deliveries, skipping (event, webhook) pairs that already have one; the ids of
    those inserted."""
    if not rows:
        return set()
    dialect = session.get_bind().dialect.name
    insert_stmt = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(WebhookDelivery)
    statement = (
        insert_stmt.values(list(rows))
        .on_conflict_do_nothing(index_elements=["event_id", "webhook_id"])
        .returning(WebhookDelivery.id)
    )
    return set((await session.execute(statement)).scalars())


async def insert_delivery(session: AsyncSession, values: dict[str, Any]) -> Rows:
    return (
        await session.execute(insert(WebhookDelivery).values(**values).returning(*DELIVERY_COLUMNS))
    ).one()


# --- Deliveries -------------------------------------------------------------------------------


def deliveries_of(webhook_id: uuid.UUID, filters: DeliveryFilters) -> Select[*tuple[Any, ...]]:
    statement = select(*DELIVERY_COLUMNS).where(WebhookDelivery.webhook_id == webhook_id)
    if filters.status is not None:
        statement = statement.where(WebhookDelivery.status == filters.status)
    if filters.event_type is not None:
        statement = statement.where(WebhookDelivery.event_type == filters.event_type)
    return statement


async def get_delivery(
    session: AsyncSession, owner_id: uuid.UUID, webhook_id: uuid.UUID, delivery_id: uuid.UUID
) -> Rows | None:
    statement = (
        select(*DELIVERY_COLUMNS)
        .join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
        .where(
            WebhookDelivery.id == delivery_id,
            WebhookDelivery.webhook_id == webhook_id,
            Webhook.owner_id == owner_id,
        )
    )
    return (await session.execute(statement)).one_or_none()


async def attempts_of(session: AsyncSession, delivery_ids: Sequence[uuid.UUID]) -> list[Rows]:
    """The attempts of several deliveries in one query, oldest first."""
    if not delivery_ids:
        return []
    statement = (
        select(*ATTEMPT_COLUMNS)
        .where(WebhookAttempt.delivery_id.in_(delivery_ids))
        .order_by(WebhookAttempt.delivery_id, WebhookAttempt.number)
    )
    return list((await session.execute(statement)).all())


async def restart_delivery(session: AsyncSession, delivery_id: uuid.UUID, now: datetime) -> Rows | None:
    """A finished delivery back to pending, as a new series; None if it is still pending."""
    result = await session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id, WebhookDelivery.status != DeliveryStatus.PENDING.value)
        .values(
            status=DeliveryStatus.PENDING.value,
            series=WebhookDelivery.series + 1,
            next_attempt_at=now,
            last_error=None,
            finished_at=None,
            updated_at=now,
        )
        .returning(*DELIVERY_COLUMNS)
    )
    return result.one_or_none()


# --- The delivery task ---------------------------------------------------------------------


async def delivery_target(session: AsyncSession, delivery_id: uuid.UUID) -> Rows | None:
    """What one attempt needs: the delivery, and its webhook's target and secrets."""
    statement = select(
        WebhookDelivery.id,
        WebhookDelivery.webhook_id,
        WebhookDelivery.event_id,
        WebhookDelivery.event_type,
        WebhookDelivery.occurred_at,
        WebhookDelivery.payload,
        WebhookDelivery.status,
        WebhookDelivery.series,
        Webhook.owner_id,
        Webhook.url,
        Webhook.is_active,
        Webhook.retry_policy,
        Webhook.timeout_seconds,
        Webhook.ssl_verify,
        Webhook.secret,
        Webhook.previous_secret,
        Webhook.previous_secret_expires_at,
    ).join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
    return (await session.execute(statement.where(WebhookDelivery.id == delivery_id))).one_or_none()


async def lock_delivery(session: AsyncSession, delivery_id: uuid.UUID) -> bool:
    """Hold the delivery until the transaction ends (False if it is gone): its attempts
    are numbered one at a time, and a webhook deleted meanwhile waits or has won."""
    statement = select(WebhookDelivery.id).where(WebhookDelivery.id == delivery_id).with_for_update()
    return (await session.execute(statement)).one_or_none() is not None


async def next_attempt_number(session: AsyncSession, delivery_id: uuid.UUID) -> int:
    counted = select(func.coalesce(func.max(WebhookAttempt.number), 0)).where(
        WebhookAttempt.delivery_id == delivery_id
    )
    return int((await session.execute(counted)).scalar_one()) + 1


async def insert_attempt(session: AsyncSession, values: dict[str, Any]) -> None:
    await session.execute(insert(WebhookAttempt), [values])


async def settle_delivery(
    session: AsyncSession, delivery_id: uuid.UUID, series: int, values: dict[str, Any]
) -> bool:
    """Apply an attempt's outcome to a delivery still pending in this series; False if it
    was cancelled or redelivered meanwhile (the attempt is recorded all the same)."""
    result = await session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == delivery_id,
            WebhookDelivery.series == series,
            WebhookDelivery.status == DeliveryStatus.PENDING.value,
        )
        .values(**values)
        .returning(WebhookDelivery.id)
    )
    return result.one_or_none() is not None


async def purge_finished(session: AsyncSession, before: datetime, *, limit: int) -> int:
    """Delete up to ``limit`` finished deliveries created before ``before`` (their attempts
    go with them); how many."""
    doomed = (
        select(WebhookDelivery.id)
        .where(WebhookDelivery.created_at < before, WebhookDelivery.status != DeliveryStatus.PENDING.value)
        .limit(limit)
    )
    result = await session.execute(
        delete(WebhookDelivery)
        .where(WebhookDelivery.id.in_(doomed.scalar_subquery()))
        .returning(WebhookDelivery.id)
    )
    return len(result.all())
