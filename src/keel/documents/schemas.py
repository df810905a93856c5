from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, StringConstraints

from keel.platform.http.envelope import FILLED_LINE_PATTERN, LINE_PATTERN, Schema
from keel.platform.outbound.ssrf import MAX_URL_LENGTH

DocumentStatus = Literal["pending", "processing", "ready", "failed"]
MAX_TITLE = 200

Title = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TITLE, pattern=FILLED_LINE_PATTERN),
]


class Document(Schema):
    """An uploaded document: its file, and how far its processing got."""

    id: uuid.UUID = Field(description="Document id (UUIDv7).")
    title: str = Field(description="The title given at upload, or the file name.")
    filename: str = Field(description="The uploaded file's name, reduced to a safe label (no path).")
    media_type: str = Field(description="The type, judged by the file's content (not its name).")
    size_bytes: int = Field(description="The file's size in bytes.")
    sha256: str = Field(description="SHA-256 of the file's bytes, lowercase hex.")
    status: DocumentStatus = Field(
        description="pending → processing → ready | failed (`error` then says why)."
    )
    error: str | None = Field(description="Why the text could not be extracted, when `failed`.")
    chunk_count: int = Field(description="How many chunks the text was cut into (0 until `ready`).")
    text_chars: int | None = Field(description="Length of the extracted text in characters, once `ready`.")
    product_id: uuid.UUID | None = Field(description="The product it is attached to, if any.")
    owner_id: uuid.UUID = Field(description="Who uploaded it.")
    job_id: uuid.UUID | None = Field(description="The `documents.process` job (`GET /jobs/{id}`).")
    version: int = Field(description="Incremented by every change; the ETag is derived from it.")
    created_at: datetime = Field(description="When it was uploaded.")
    updated_at: datetime = Field(description="When it last changed.")
    processed_at: datetime | None = Field(description="When processing ended (ready or failed).")


class DocumentChunk(Schema):
    """A slice of a document's extracted text: `text == text_of_document[start_char:end_char]`."""

    index: int = Field(description="Position among the document's chunks, from 0 without gaps.")
    start_char: int = Field(description="Offset of the first character in the extracted text.")
    end_char: int = Field(description="Offset just past the last character.")
    text: str = Field(description="The chunk's text.")


class DocumentFilters(Schema):
    """Query filters of the document list, combined with AND."""

    product_id: uuid.UUID | None = Field(None, description="Only documents attached to this product.")
    status: DocumentStatus | None = Field(None, description="Only documents with this status.")


class DocumentUploadFields(Schema):
    """The form fields sent with the file."""

    model_config = ConfigDict(extra="forbid")

    title: Title | None = Field(
        None, description=f"At most {MAX_TITLE} characters; defaults to the file name."
    )
    product_id: uuid.UUID | None = Field(
        None,
        description="Attach to this product (editor access needed); its sharing then decides who sees it.",
    )
    async_processing: bool = Field(
        True,
        description="true: 202 at once, processing runs as a job; false: processed during the request, "
        "201 with the final document (ready or failed).",
    )
    webhook_url: str | None = Field(
        None,
        max_length=MAX_URL_LENGTH,
        description="When the processing job ends, POST a signed `job.succeeded`/`job.failed` here "
        "(see `GET /jobs/webhook-secret`). https only in production; private addresses are refused.",
    )


UPLOAD_FIELDS = frozenset(DocumentUploadFields.model_fields)

# The multipart body as OpenAPI describes it: the route parses the stream itself, so
# FastAPI cannot derive it from the signature.
UPLOAD_REQUEST_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "additionalProperties": False,
                "properties": {
                    "file": {
                        "type": "string",
                        "format": "binary",
                        "description": "PDF, DOCX, plain text, Markdown or HTML (judged by content); "
                        "at most `KEEL_UPLOAD_MAX_BYTES`.",
                    },
                    "title": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": MAX_TITLE,
                        "pattern": LINE_PATTERN,
                    },
                    "product_id": {"type": "string", "format": "uuid"},
                    "async_processing": {"type": "boolean", "default": True},
                    "webhook_url": {"type": "string", "maxLength": MAX_URL_LENGTH},
                },
            }
        }
    },
}
