"""Background work on documents."""

from __future__ import annotations

import uuid
from typing import Any

from keel.documents import flows
from keel.documents.service import PROCESS_TASK
from keel.platform.queue import JobContext, task

SWEEP_UPLOADS_TASK = "documents.sweep_uploads"
# An upload in progress writes to its temp file all along (its mtime keeps moving): one
# untouched for an hour belongs to a process that died mid-upload.
UPLOAD_TEMP_MAX_AGE_SECONDS = 3600.0


@task(PROCESS_TASK, max_attempts=3, timeout=1800.0)
async def process_document(ctx: JobContext) -> dict[str, Any]:
    """Extract the document's text and chunk it. A document deleted meanwhile ends the
    job quietly; an unreadable file fails the document, not the job (see
    :func:`.flows.process`)."""
    return await flows.process(ctx.resources, uuid.UUID(ctx.payload["document_id"]))


@task(SWEEP_UPLOADS_TASK, max_attempts=1, timeout=600.0)
async def sweep_uploads(ctx: JobContext) -> dict[str, int]:
    """Remove the temp files of uploads a process left behind when it died mid-upload
    (a living one removes its own on every failure)."""
    return {"removed": await ctx.resources.storage.sweep_temp(UPLOAD_TEMP_MAX_AGE_SECONDS)}
