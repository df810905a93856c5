"""Queries for the jobs API, in SQLAlchemy Core over the queue's table.

A user's reads name the owner in the statement itself, so another user's job is simply
not found; only the admin queries leave the owner out.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import ColumnElement, Row, Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from keel.jobs.schemas import JobFilters
from keel.platform.http.listing import ListParams, SortField, Sorting
from keel.platform.http.pagination import Page
from keel.platform.queue.models import Job

# What the API shows (and the owner): never the payload or the lease.
COLUMNS = (
    Job.id,
    Job.kind,
    Job.status,
    Job.progress,
    Job.result,
    Job.last_error,
    Job.attempts,
    Job.max_attempts,
    Job.created_at,
    Job.started_at,
    Job.finished_at,
    Job.run_at,
    Job.owner_id,
)

SORTING = Sorting(
    {"created_at": SortField(Job.created_at, "datetime")}, default="-created_at", tiebreak=Job.id
)

JobRow = Row[Any]


def _where(owner_id: uuid.UUID | None, filters: JobFilters) -> list[ColumnElement[bool]]:
    clauses: list[ColumnElement[bool]] = []
    if owner_id is not None:
        clauses.append(Job.owner_id == owner_id)
    if filters.status is not None:
        clauses.append(Job.status == filters.status)
    if filters.kind is not None:
        clauses.append(Job.kind == filters.kind)
    return clauses


async def list_page(
    session: AsyncSession, params: ListParams, filters: JobFilters, *, owner_id: uuid.UUID | None
) -> Page[JobRow]:
    """Page mode: the total, then the page (skipped when it lies past the end).
    ``owner_id`` None lists every user's jobs (admins)."""
    clauses = _where(owner_id, filters)
    total = (await session.execute(select(func.count()).select_from(Job).where(*clauses))).scalar_one()
    if params.page.offset >= total:
        return Page([], total, params.page)
    statement = _rows(clauses, params).limit(params.page.limit).offset(params.page.offset)
    return Page(list((await session.execute(statement)).all()), total, params.page)


async def list_after(
    session: AsyncSession, params: ListParams, filters: JobFilters, *, owner_id: uuid.UUID | None
) -> tuple[list[JobRow], str | None]:
    """Cursor mode: one page after the cursor, and the next page's cursor if any."""
    clauses = _where(owner_id, filters)
    after = SORTING.after_cursor(params.cursor, params.sort)
    if after is not None:
        clauses.append(after)
    rows = list((await session.execute(_rows(clauses, params).limit(params.per_page + 1))).all())
    return SORTING.cut(rows, params.sort, params.per_page)


def _rows(clauses: list[ColumnElement[bool]], params: ListParams) -> Select[Any]:
    return select(*COLUMNS).where(*clauses).order_by(*SORTING.order_by(params.sort))


async def get(session: AsyncSession, job_id: uuid.UUID, *, owner_id: uuid.UUID | None) -> JobRow | None:
    """The job, if it exists and (unless ``owner_id`` is None) belongs to ``owner_id``."""
    clauses = [Job.id == job_id]
    if owner_id is not None:
        clauses.append(Job.owner_id == owner_id)
    return (await session.execute(select(*COLUMNS).where(*clauses))).one_or_none()


async def get_payload(
    session: AsyncSession, job_id: uuid.UUID
) -> tuple[uuid.UUID | None, dict[str, Any]] | None:
    """The owner and payload of a job, or None if it no longer exists."""
    row = (await session.execute(select(Job.owner_id, Job.payload).where(Job.id == job_id))).one_or_none()
    return None if row is None else (row.owner_id, row.payload)
