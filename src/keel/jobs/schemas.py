from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import ConfigDict, Field

from keel.platform.http.envelope import Schema
from keel.platform.outbound.ssrf import MAX_URL_LENGTH

JobStatus = Literal["queued", "running", "succeeded", "failed", "dead", "cancelled"]


class Job(Schema):
    """A unit of background work and how far it got."""

    id: uuid.UUID = Field(description="Job id (UUIDv7).")
    kind: str = Field(description="What the job does, e.g. `products.export`.")
    status: JobStatus = Field(
        description="queued → running → succeeded | failed | dead | cancelled. `failed`: it "
        "cannot succeed; `dead`: every attempt failed (an admin may retry it)."
    )
    progress: int = Field(ge=0, le=100, description="Percent done, as last reported by the job.")
    result: Any | None = Field(description="What the job produced once it succeeded (JSON), else null.")
    error: str | None = Field(description="Why the last attempt failed, if it did.")
    attempts: int = Field(description="Attempts started so far.")
    max_attempts: int = Field(description="Attempts allowed before the job is `dead`.")
    created_at: datetime = Field(description="When the job was submitted.")
    started_at: datetime | None = Field(description="When its first attempt started.")
    finished_at: datetime | None = Field(description="When it ended (any final status).")
    run_at: datetime = Field(description="When it is (or was last) due to run.")


class AdminJob(Job):
    """A job as administrators see it: with the account it works for."""

    owner_id: uuid.UUID | None = Field(description="The user the job works for; null for system work.")


class JobFilters(Schema):
    """Filters of job lists, combined with AND."""

    status: JobStatus | None = Field(None, description="Only jobs in this status.")
    kind: str | None = Field(
        None, max_length=100, pattern=r"^[a-z0-9_.:-]+$", description="Only jobs of this kind."
    )


class JobAccepted(Schema):
    """The answer to a request processed in the background (202): follow `Location`."""

    job_id: uuid.UUID = Field(description="Poll `GET /jobs/{job_id}` for status, progress and result.")
    status: Literal["queued"] = Field(description="Always `queued` when accepted.")


class AsyncOptions(Schema):
    """Fields shared by every request that may run in the background."""

    model_config = ConfigDict(extra="forbid")

    async_processing: Literal[True] = Field(
        True,
        description="Always true here: the work runs as a job and the answer is 202 with its id.",
    )
    webhook_url: str | None = Field(
        None,
        max_length=MAX_URL_LENGTH,
        description="When the job ends (succeeded, or failed for good), POST a signed "
        '`{"type": "job.succeeded"|"job.failed", "timestamp", "data": <job>}` here '
        "(Standard Webhooks headers; verify with the secret from `GET /jobs/webhook-secret`). "
        "https only in production; addresses in private networks are refused.",
    )


class WebhookSecret(Schema):
    """The key that signs your jobs' `webhook_url` deliveries."""

    secret: str = Field(
        description="`whsec_…` (Standard Webhooks): verify `webhook-signature` with it. Stable "
        "for your account; it changes only if the server's secret key changes."
    )
