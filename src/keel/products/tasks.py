"""Background work on the catalogue."""

from __future__ import annotations

from typing import Any

from keel.jobs import files
from keel.jobs import service as jobs
from keel.platform.queue import JobContext, JobFailed, task
from keel.products import export, repository
from keel.products.schemas import ExportFormat, ExportJobCreate, ProductFilters

EXPORT_TASK = "products.export"


def export_payload(data: ExportJobCreate) -> dict[str, Any]:
    """What a ``products.export`` job needs, as JSON."""
    return {"format": data.format, "filters": data.filters.model_dump(mode="json", exclude_none=True)}


@task(EXPORT_TASK, max_attempts=3, timeout=1800.0)
async def export_products(ctx: JobContext) -> dict[str, Any]:
    """Write ``GET /products/export``'s rows for the job's owner — what they may see now —
    to the job's file, reporting progress per batch."""
    format: ExportFormat = ctx.payload["format"]
    filters = ProductFilters.model_validate(ctx.payload["filters"])
    sessionmaker = ctx.resources.db.sessionmaker
    if ctx.owner_id is None:
        raise JobFailed("An export needs the account it is for.")
    async with sessionmaker() as session:
        principal = await jobs.owner_principal(session, ctx.owner_id)
        if principal is None or not principal.can("products:read"):
            raise JobFailed(
                "The account that asked for this export is disabled or may no longer read products."
            )
        total = await repository.count_visible(session, principal, filters)
    rows = reported = 0
    async with files.writing(ctx.job_id, format) as sink:
        async for count, chunk in export.encoded(sessionmaker, principal, filters=filters, format=format):
            await sink.write(chunk)
            rows += count
            # 100 is the worker's to set, when the job has succeeded.
            percent = min(99, rows * 100 // total) if total else 0
            if percent > reported:
                await ctx.progress(percent)
                reported = percent
    return {"rows": rows, "bytes": sink.bytes, "format": format, "download": files.download_href(ctx.job_id)}
