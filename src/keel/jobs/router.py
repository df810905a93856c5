import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import FileResponse, Response

from keel.audit.service import RequestMetaDep
from keel.jobs import files, service
from keel.jobs.auth import JobsAdminRead, JobsAdminWrite, JobsRead, JobsWrite
from keel.jobs.errors import NoDownload
from keel.jobs.repository import SORTING, JobRow
from keel.jobs.schemas import AdminJob, Job, JobAccepted, JobFilters, WebhookSecret
from keel.platform.db import SessionDep
from keel.platform.http.docs import NOT_MODIFIED, errors
from keel.platform.http.envelope import Envelope, Link, ok
from keel.platform.http.etag import PRIVATE_NO_CACHE, IfNoneMatch, resource_response
from keel.platform.http.listing import ListParams, list_params, list_response
from keel.platform.http.routing import KeelRoute
from keel.platform.resources import ResourcesDep

router = APIRouter(prefix="/api/v2", route_class=KeelRoute)

Filters = Annotated[JobFilters, Query()]
Listing = Annotated[ListParams, Depends(list_params(SORTING))]
NOT_YOURS = "No such job among yours (another user's job is not revealed)."
ACCEPTED_DESCRIPTION = (
    "Accepted: the work runs as a job. `Location` is the job; poll it (its `ETag` allows "
    "`If-None-Match`) or wait for the `webhook_url` delivery."
)


def job_href(job_id: uuid.UUID) -> str:
    return f"{router.prefix}/jobs/{job_id}"


def accepted_response(accepted: JobAccepted) -> Response:
    """202 with ``{job_id, status: "queued"}``, ``Location`` and a ``monitor`` link: what an
    endpoint returns after ``service.submit``. Document it with ``ACCEPTED``."""
    href = job_href(accepted.job_id)
    return ok(
        accepted,
        status_code=202,
        links=[Link(href=href, rel="monitor")],
        headers={"Location": href, "Cache-Control": PRIVATE_NO_CACHE},
    )


ACCEPTED: dict[int | str, dict[str, Any]] = {
    202: {"model": Envelope[JobAccepted], "description": ACCEPTED_DESCRIPTION}
}


def _respond(request: Request, row: JobRow) -> Response:
    data = service.render_job(row)
    return resource_response(request, data, etag=service.etag(data), self_href=job_href(row.id))


@router.get(
    "/jobs",
    tags=["jobs"],
    response_model=Envelope[list[Job]],
    responses={**NOT_MODIFIED, **errors({403: "Missing `jobs:read`."})},
)
async def list_jobs(
    request: Request, principal: JobsRead, session: SessionDep, filters: Filters, params: Listing
) -> Response:
    """List your jobs, newest first; filter by status and kind."""
    return list_response(request, await service.list_jobs(session, principal, filters=filters, params=params))


@router.get(
    "/jobs/webhook-secret",
    tags=["jobs"],
    response_model=Envelope[WebhookSecret],
    responses=errors({403: "Missing `jobs:read`."}),
)
async def get_job_webhook_secret(principal: JobsRead, resources: ResourcesDep) -> Response:
    """The secret that signs your jobs' `webhook_url` deliveries.

    Deliveries follow Standard Webhooks: headers `webhook-id` (the event id, the same on
    every retry), `webhook-timestamp` and `webhook-signature` (`v1,<base64 HMAC-SHA256 of
    "{id}.{timestamp}.{body}">`); the body is `{"type": "job.succeeded"|"job.failed",
    "timestamp", "data": <the job>}`. Any Standard Webhooks library verifies it with this
    secret, e.g. `standardwebhooks.Webhook(secret).verify(body, headers)`. A delivery that
    gets no 2xx answer within 10 s is retried a few times over about a quarter of an hour.
    """
    secret = service.webhook_secret(resources.settings, principal.user_id)
    return ok(WebhookSecret(secret=secret), headers={"Cache-Control": "private, no-store"})


@router.get(
    "/jobs/{job_id:uuid}",
    tags=["jobs"],
    response_model=Envelope[Job],
    responses={**NOT_MODIFIED, **errors({403: "Missing `jobs:read`.", 404: NOT_YOURS})},
)
async def get_job(
    request: Request, job_id: uuid.UUID, principal: JobsRead, session: SessionDep, if_none_match: IfNoneMatch
) -> Response:
    """One of your jobs: status, progress, result or error, attempts."""
    return _respond(request, await service.get(session, principal, job_id=job_id))


@router.post(
    "/jobs/{job_id:uuid}/cancel",
    tags=["jobs"],
    response_model=Envelope[Job],
    responses=errors(
        {403: "Missing `jobs:write`.", 404: NOT_YOURS, 409: "`CONFLICT`: the job has already finished."}
    ),
)
async def cancel_job(
    request: Request, job_id: uuid.UUID, principal: JobsWrite, session: SessionDep, meta: RequestMetaDep
) -> Response:
    """Cancel one of your queued or running jobs; a running one stops at its next heartbeat."""
    return _respond(request, await service.cancel(session, principal, job_id=job_id, meta=meta))


@router.get(
    "/jobs/{job_id:uuid}/download",
    tags=["jobs"],
    response_class=FileResponse,
    responses={
        200: {
            "description": "The file the job produced, as an attachment.",
            "content": {
                media_type: {"schema": {"type": "string"}} for media_type in files.MEDIA_TYPES.values()
            },
        },
        **errors(
            {
                403: "Missing `jobs:read`.",
                404: f"{NOT_YOURS} Or the job has not succeeded, made no file, or its file has expired.",
            }
        ),
    },
)
async def download_job_file(job_id: uuid.UUID, principal: JobsRead, session: SessionDep) -> Response:
    """Download the file one of your jobs produced (an export, for instance)."""
    row = await service.get(session, principal, job_id=job_id)
    found = await files.download_of(row.id, row.result) if row.status == "succeeded" else None
    if found is None:
        raise NoDownload()
    path, media_type = found
    name = f"{row.kind.replace('.', '-')}-{row.id}{path.suffix}"
    return FileResponse(
        path, media_type=media_type, filename=name, headers={"Cache-Control": PRIVATE_NO_CACHE}
    )


# --- Administration --------------------------------------------------------------------------


@router.get(
    "/admin/jobs",
    tags=["admin"],
    response_model=Envelope[list[AdminJob]],
    responses={**NOT_MODIFIED, **errors({403: "Missing `users:admin` or `jobs:read`."})},
)
async def list_all_jobs(
    request: Request, principal: JobsAdminRead, session: SessionDep, filters: Filters, params: Listing
) -> Response:
    """List every user's jobs, newest first (admins); `?status=dead` is the dead-letter queue."""
    page = await service.list_all_jobs(session, principal, filters=filters, params=params)
    return list_response(request, page)


@router.post(
    "/admin/jobs/{job_id:uuid}/retry",
    tags=["admin"],
    response_model=Envelope[AdminJob],
    responses=errors(
        {
            403: "Missing `users:admin` or `jobs:write`.",
            404: "No job with this id.",
            409: "`CONFLICT`: only a dead or failed job can be retried.",
        }
    ),
)
async def retry_job(
    job_id: uuid.UUID, principal: JobsAdminWrite, session: SessionDep, meta: RequestMetaDep
) -> Response:
    """Queue a dead or failed job again with a fresh set of attempts (admins)."""
    row = await service.retry(session, principal, job_id=job_id, meta=meta)
    return ok(
        service.render_admin_job(row), links=[Link(href=f"{router.prefix}/admin/jobs", rel="collection")]
    )
