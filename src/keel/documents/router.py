import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.responses import Response, StreamingResponse

from keel.documents import flows, repository, service
from keel.documents.auth import DocumentsRead, DocumentsWrite
from keel.documents.detect import detect_type
from keel.documents.errors import DocumentNotFound, UnsupportedDocumentType
from keel.documents.repository import Rows
from keel.documents.schemas import (
    UPLOAD_FIELDS,
    UPLOAD_REQUEST_BODY,
    Document,
    DocumentChunk,
    DocumentFilters,
    DocumentUploadFields,
)
from keel.documents.service import ReceivedUpload
from keel.jobs import service as jobs
from keel.jobs.router import job_href
from keel.platform.db import SessionDep
from keel.platform.http.docs import NOT_MODIFIED, errors
from keel.platform.http.envelope import Envelope, Link
from keel.platform.http.errors import ValidationFailed
from keel.platform.http.etag import PRIVATE_NO_CACHE, IfMatch, IfNoneMatch, resource_response
from keel.platform.http.listing import ListParams, list_params, list_response
from keel.platform.http.routing import KeelRoute
from keel.platform.http.uploads import receive_upload
from keel.platform.resources import ResourcesDep
from keel.platform.storage import StorageNotFound

router = APIRouter(prefix="/api/v2/documents", tags=["documents"], route_class=KeelRoute)

Filters = Annotated[DocumentFilters, Query()]
Listing = Annotated[ListParams, Depends(list_params(repository.SORTING))]
ChunkListing = Annotated[ListParams, Depends(list_params(repository.CHUNK_SORTING))]
NOT_VISIBLE = "No such document among those you may see (existence is not revealed)."
READ = "Missing `documents:read`."


def _href(document_id: uuid.UUID) -> str:
    return f"{router.prefix}/{document_id}"


def _respond(request: Request, row: Rows, status_code: int = 200) -> Response:
    return resource_response(
        request, service.render(row), etag=service.etag(row), self_href=_href(row.id), status_code=status_code
    )


def _fields(raw: dict[str, str]) -> DocumentUploadFields:
    try:
        return DocumentUploadFields.model_validate(raw)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**error, "loc": ("body", *error["loc"])} for error in exc.errors(include_url=False)]
        ) from None


async def _received_upload(
    request: Request, principal: DocumentsWrite, resources: ResourcesDep
) -> AsyncIterator[ReceivedUpload]:
    """The body, streamed to a temporary file and checked, before any session opens
    (the principal first: an anonymous body is not read). The file is removed when the
    request ends unless it was stored."""
    settings = resources.settings
    path = await resources.storage.new_temp_file()
    try:
        form = await receive_upload(
            request.stream(),
            request.headers.get("content-type"),
            temp_path=path,
            max_file_bytes=settings.upload_max_bytes,
            allowed_fields=UPLOAD_FIELDS,
        )
        if form.file is None:
            raise ValidationFailed("Send the document as the `file` part.", field="file")
        fields = _fields(form.fields)
        # detect_type reads the file (pypdf may parse its structure): off the event loop.
        media_type = await asyncio.to_thread(detect_type, form.file.head, form.file.path)
        if media_type is None:
            raise UnsupportedDocumentType(field="file")
        webhook = await jobs.check_webhook_url(settings, fields.webhook_url)
        yield ReceivedUpload(file=form.file, media_type=media_type, fields=fields, webhook=webhook)
    finally:
        path.unlink(missing_ok=True)


Received = Annotated[ReceivedUpload, Depends(_received_upload, scope="function")]


@router.post(
    "",
    status_code=202,
    response_model=Envelope[Document],
    openapi_extra={"requestBody": UPLOAD_REQUEST_BODY},
    responses={
        201: {
            "model": Envelope[Document],
            "description": "Processed during the request (`async_processing=false`).",
        },
        **errors(
            {
                400: "`BAD_REQUEST`: the multipart body is malformed.",
                403: "Missing `documents:write`, or only viewer access to `product_id`.",
                404: "`product_id` names no product you may see.",
                413: "`PAYLOAD_TOO_LARGE`: the file exceeds `KEEL_UPLOAD_MAX_BYTES`.",
                415: "`UNSUPPORTED_MEDIA_TYPE`: not multipart/form-data, or the file is not a PDF, DOCX, "
                "text, Markdown or HTML document by its content.",
                422: "`VALIDATION_ERROR`: a field is invalid or unknown, the file is missing, or "
                "`webhook_url` may not be called.",
            }
        ),
    },
)
async def upload_document(
    request: Request, principal: DocumentsWrite, received: Received, resources: ResourcesDep
) -> Response:
    """Upload a document (multipart); its text is extracted and chunked as a job.

    202 with the document (`pending`) and a `monitor` link to its job; with
    `async_processing=false`, 201 with the document once processed (`ready` or `failed`).
    The type is judged by the file's content. `Idempotency-Key` is ignored here.
    """
    row, accepted = await flows.upload(resources, principal, received)
    if not received.fields.async_processing:
        return _respond(request, row, status_code=201)
    monitor = job_href(accepted.job_id)
    response = resource_response(
        request,
        service.render(row),
        etag=service.etag(row),
        self_href=_href(row.id),
        status_code=202,
        links=[Link(href=monitor, rel="monitor")],
    )
    response.headers["Location"] = monitor
    return response


@router.get(
    "",
    response_model=Envelope[list[Document]],
    responses={**NOT_MODIFIED, **errors({403: READ})},
)
async def list_documents(
    request: Request,
    *,
    principal: DocumentsRead,
    session: SessionDep,
    filters: Filters,
    params: Listing,
    if_none_match: IfNoneMatch,
) -> Response:
    """List the documents you may see: yours, and those on products you may read."""
    page = await service.list_documents(session, principal, filters=filters, params=params)
    return list_response(request, page)


@router.get(
    "/{document_id:uuid}",
    response_model=Envelope[Document],
    responses={**NOT_MODIFIED, **errors({403: READ, 404: NOT_VISIBLE})},
)
async def get_document(
    request: Request,
    document_id: uuid.UUID,
    principal: DocumentsRead,
    session: SessionDep,
    if_none_match: IfNoneMatch,
) -> Response:
    """One document: metadata, status, sizes, hash and chunk count, with its strong ETag."""
    return _respond(request, await service.get(session, principal, document_id=document_id))


@router.get(
    "/{document_id:uuid}/chunks",
    response_model=Envelope[list[DocumentChunk]],
    responses={**NOT_MODIFIED, **errors({403: READ, 404: NOT_VISIBLE})},
)
async def list_document_chunks(
    request: Request,
    *,
    document_id: uuid.UUID,
    principal: DocumentsRead,
    session: SessionDep,
    params: ChunkListing,
    if_none_match: IfNoneMatch,
) -> Response:
    """The document's chunks in order (empty until it is `ready`)."""
    page = await service.list_chunks(session, principal, document_id=document_id, params=params)
    return list_response(request, page)


def content_disposition(filename: str) -> str:
    """``attachment`` with the name twice: an ASCII fallback, and the exact name encoded
    per RFC 5987 (``filename*``), which RFC 6266 clients prefer."""
    fallback = "".join(c if " " <= c <= "~" and c not in '"\\%' else "_" for c in filename) or "document"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


@router.get(
    "/{document_id:uuid}/content",
    responses={
        200: {
            "description": "The file as uploaded, streamed, as an attachment.",
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        },
        **errors({403: READ, 404: NOT_VISIBLE}),
    },
)
async def download_document(
    document_id: uuid.UUID, principal: DocumentsRead, session: SessionDep, resources: ResourcesDep
) -> StreamingResponse:
    """Download the uploaded file, with its detected type, as an attachment."""
    # X-Content-Type-Options: nosniff is on every response (RequestContextMiddleware).
    row = await service.get(session, principal, document_id=document_id)
    try:
        chunks = await resources.storage.open(row.sha256)
    except StorageNotFound:
        raise DocumentNotFound("The document's file is missing.") from None
    return StreamingResponse(
        chunks,
        media_type=row.media_type,
        headers={
            "Content-Disposition": content_disposition(row.filename),
            "Content-Length": str(row.size_bytes),
            "Cache-Control": PRIVATE_NO_CACHE,
        },
    )


@router.delete(
    "/{document_id:uuid}",
    status_code=204,
    responses=errors(
        {
            403: "Only its owner, an owner of its product or an admin may delete it (or `documents:write` "
            "is missing).",
            404: NOT_VISIBLE,
            412: "`PRECONDITION_FAILED`: `If-Match` does not match the current ETag.",
        }
    ),
)
async def delete_document(
    document_id: uuid.UUID,
    principal: DocumentsWrite,
    session: SessionDep,
    resources: ResourcesDep,
    if_match: IfMatch,
) -> Response:
    """Delete a document, its chunks, and its file when no other document has the same bytes."""
    await service.delete(
        session, principal, storage=resources.storage, document_id=document_id, if_match=if_match
    )
    return Response(status_code=204)
