"""Jobs as their owners and admins see them, and the mechanism any endpoint uses to do its
work in the background: :func:`check_webhook_url`, :func:`submit`, then
``keel.jobs.router.accepted_response`` (202 + ``Location``)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pydantic_core
from sqlalchemy.ext.asyncio import AsyncSession

from keel.audit import service as audit
from keel.audit.service import RequestMeta
from keel.jobs import repository
from keel.jobs.errors import JobFinished, JobNotFound, JobNotRetryable
from keel.jobs.repository import JobRow
from keel.jobs.schemas import JobAccepted, JobFilters
from keel.platform.http.listing import CursorPage, ListParams
from keel.platform.http.pagination import Page
from keel.platform.outbound import signing
from keel.platform.outbound.policy import require_callable
from keel.platform.queue import control, enqueue
from keel.platform.queue.models import Job
from keel.platform.security.principal import Principal
from keel.platform.security.tokens import derive_key
from keel.settings import Settings
from keel.users import service as users

# Where submit() keeps a job's webhook_url in its payload; handlers ignore it.
WEBHOOK_URL_KEY = "_webhook_url"


def _instant(value: datetime | None) -> str | None:
    # As pydantic renders an aware UTC datetime elsewhere in the API.
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def render_job(job: Job | JobRow) -> dict[str, Any]:
    """The API representation (``schemas.Job``) as plain JSON values, so it can also be an
    event's payload (``job.succeeded`` / ``job.failed``). No payload, no lease."""
    return {
        "id": str(job.id),
        "kind": job.kind,
        "status": job.status,
        "progress": job.progress,
        "result": job.result,
        "error": job.last_error,
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "created_at": _instant(job.created_at),
        "started_at": _instant(job.started_at),
        "finished_at": _instant(job.finished_at),
        "run_at": _instant(job.run_at),
    }


def render_admin_job(job: Job | JobRow) -> dict[str, Any]:
    return {**render_job(job), "owner_id": None if job.owner_id is None else str(job.owner_id)}


def etag(rendered: Mapping[str, Any]) -> str:
    """Strong: a job has no version counter, so the tag is a hash of its representation
    (a poller's ``If-None-Match`` gets 304 until something changes)."""
    return f'"{hashlib.blake2b(pydantic_core.to_json(rendered), digest_size=12).hexdigest()}"'


# --- Reads and owner/admin actions ---------------------------------------------------------


async def list_jobs(
    session: AsyncSession, principal: Principal, *, filters: JobFilters, params: ListParams
) -> Page[dict[str, Any]] | CursorPage:
    """The caller's own jobs, newest first."""
    return await _list(session, params, filters, owner_id=principal.user_id, render=render_job)


async def list_all_jobs(
    session: AsyncSession, principal: Principal, *, filters: JobFilters, params: ListParams
) -> Page[dict[str, Any]] | CursorPage:
    """Every user's jobs (admins), newest first."""
    return await _list(session, params, filters, owner_id=None, render=render_admin_job)


async def _list(
    session: AsyncSession,
    params: ListParams,
    filters: JobFilters,
    *,
    owner_id: uuid.UUID | None,
    render: Any,
) -> Page[dict[str, Any]] | CursorPage:
    if params.cursor is None:
        return (await repository.list_page(session, params, filters, owner_id=owner_id)).map(render)
    rows, next_cursor = await repository.list_after(session, params, filters, owner_id=owner_id)
    return CursorPage([render(row) for row in rows], next_cursor, params.page)


async def get(session: AsyncSession, principal: Principal, *, job_id: uuid.UUID) -> JobRow:
    """One of the caller's jobs; another user's is not found (404), whoever asks."""
    row = await repository.get(session, job_id, owner_id=principal.user_id)
    if row is None:
        raise JobNotFound()
    return row


async def cancel(
    session: AsyncSession, principal: Principal, *, job_id: uuid.UUID, meta: RequestMeta
) -> JobRow:
    """Cancel one of the caller's queued or running jobs (409 once it has finished)."""
    await get(session, principal, job_id=job_id)
    if not await control.cancel(session, job_id):
        raise JobFinished()
    audit.record(
        session, meta, action="job.cancelled", actor=principal, resource_type="job", resource_id=job_id
    )
    return await get(session, principal, job_id=job_id)


async def retry(
    session: AsyncSession, principal: Principal, *, job_id: uuid.UUID, meta: RequestMeta
) -> JobRow:
    """Queue a dead or failed job again, with fresh attempts (admins; 409 otherwise)."""
    row = await repository.get(session, job_id, owner_id=None)
    if row is None:
        raise JobNotFound()
    if not await control.retry(session, job_id):
        raise JobNotRetryable()
    audit.record(
        session,
        meta,
        action="job.retried",
        actor=principal,
        resource_type="job",
        resource_id=job_id,
        detail={"kind": row.kind, "owner_id": None if row.owner_id is None else str(row.owner_id)},
    )
    retried = await repository.get(session, job_id, owner_id=None)
    assert retried is not None  # noqa: S101 - updated in this transaction
    return retried


# --- Background processing -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """A ``webhook_url`` that passed the SSRF checks (made only by :func:`check_webhook_url`)."""

    url: str


async def check_webhook_url(settings: Settings, url: str | None) -> WebhookTarget | None:
    """422 on ``webhook_url`` unless the URL may be called (see ``require_callable``: call
    it before the request's transaction opens)."""
    if url is None:
        return None
    await require_callable(settings, url, field="webhook_url")
    return WebhookTarget(url)


async def submit(
    session: AsyncSession,
    principal: Principal,
    *,
    kind: str,
    payload: Mapping[str, Any],
    webhook: WebhookTarget | None,
) -> JobAccepted:
    """Enqueue a ``kind`` job for the caller in the request's transaction; with a checked
    ``webhook``, its URL is told how the job ended (see ``keel.jobs.tasks``)."""
    if WEBHOOK_URL_KEY in payload:
        raise ValueError(f"{WEBHOOK_URL_KEY!r} is reserved in job payloads")
    values = dict(payload)
    if webhook is not None:
        values[WEBHOOK_URL_KEY] = webhook.url
    job_id = await enqueue(session, kind, values, owner_id=principal.user_id)
    return JobAccepted(job_id=job_id, status="queued")


def webhook_secret(settings: Settings, user_id: uuid.UUID) -> str:
    """The ``whsec_`` secret signing a user's job webhooks: derived, not stored, so it needs
    no table and no rotation of its own (it changes with ``KEEL_SECRET_KEY``)."""
    key = derive_key(settings.signing_key, "job-webhooks")
    digest = hmac.new(key, user_id.bytes, hashlib.sha256).digest()
    return signing.SECRET_PREFIX + base64.b64encode(digest).decode()


async def owner_principal(session: AsyncSession, owner_id: uuid.UUID) -> Principal | None:
    """Who a job acts for, with the permissions of the owner's role now (not when the job was
    submitted, nor an API key's narrower scopes: the endpoint checked those); None when the
    account is gone or disabled."""
    return await users.acting_principal(session, owner_id)
