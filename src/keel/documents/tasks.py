"""Background work on documents."""

from __future__ import annotations

import uuid
from typing import Any

from keel.documents import flows
from keel.documents.service import PROCESS_TASK
from keel.platform.queue import JobContext, task


@task(PROCESS_TASK, max_attempts=3, timeout=1800.0)
async def process_document(ctx: JobContext) -> dict[str, Any]:
    """Extract the document's text and chunk it. A document deleted meanwhile ends the
    job quietly; an unreadable file fails the document, not the job (see
    :func:`.flows.process`)."""
    return await flows.process(ctx.resources, uuid.UUID(ctx.payload["document_id"]))
