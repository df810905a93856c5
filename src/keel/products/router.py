import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response, StreamingResponse

from keel.audit.service import RequestMetaDep
from keel.jobs import service as jobs
from keel.jobs.router import ACCEPTED, accepted_response
from keel.jobs.schemas import JobAccepted
from keel.platform.caching.views import read_view
from keel.platform.db import SessionDep
from keel.platform.http.docs import NOT_MODIFIED, errors
from keel.platform.http.envelope import Envelope
from keel.platform.http.etag import IfMatch, IfNoneMatch, resource_response
from keel.platform.http.listing import list_response
from keel.platform.http.routing import KeelRoute
from keel.platform.resources import ResourcesDep
from keel.products import export, service, tasks
from keel.products.auth import ProductsAdmin, ProductsExportJob, ProductsRead, ProductsWrite
from keel.products.errors import ProductNotFound
from keel.products.query import PRODUCT_LIST, ProductList
from keel.products.repository import ProductRow
from keel.products.schemas import (
    ExportFormat,
    ExportJobCreate,
    Product,
    ProductCreate,
    ProductFilters,
    ProductUpdate,
)
from keel.sharing.router import add_permission_routes

router = APIRouter(prefix="/api/v2/products", tags=["products"], route_class=KeelRoute)

Filters = Annotated[ProductFilters, Query()]
NOT_VISIBLE = "No such product among those you may see (existence is not revealed)."
READ_ONLY = "`FORBIDDEN`: you may read the product but not change it (or lack `products:write`)."
STALE = "`PRECONDITION_FAILED`: `If-Match` does not match the current ETag."


def _href(product_id: uuid.UUID) -> str:
    return f"{router.prefix}/{product_id}"


def _respond(request: Request, row: ProductRow, status_code: int = 200) -> Response:
    return resource_response(
        request, service.render(row), etag=service.etag(row), self_href=_href(row.id), status_code=status_code
    )


@router.get(
    "/export",
    responses={
        200: {
            "description": "The products, streamed.",
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/x-ndjson": {"schema": {"type": "string"}},
            },
        },
        **errors({403: "Missing `products:read`."}),
    },
)
async def export_products(
    principal: ProductsRead,
    resources: ResourcesDep,
    filters: Filters,
    format: Annotated[ExportFormat, Query(description="csv or ndjson (one JSON object per line).")] = "csv",
) -> StreamingResponse:
    """Stream every product you may see that matches the filters, as CSV or NDJSON.

    Rows are read in batches, so memory stays flat whatever the count.
    """
    return export.stream(resources.db.sessionmaker, principal, filters=filters, format=format)


@dataclass(frozen=True, slots=True)
class _ExportJobRequest:
    data: ExportJobCreate
    webhook: jobs.WebhookTarget | None


async def _export_job_request(data: ExportJobCreate, resources: ResourcesDep) -> _ExportJobRequest:
    # A dependency, declared before the session: the webhook_url check looks its host up,
    # which must not happen while the request's transaction holds SQLite's write lock.
    return _ExportJobRequest(data, await jobs.check_webhook_url(resources.settings, data.webhook_url))


@router.post(
    "/export-jobs",
    status_code=202,
    response_model=Envelope[JobAccepted],
    responses={
        **ACCEPTED,
        **errors(
            {
                403: "Missing `products:read` or `jobs:write`.",
                422: "`VALIDATION_ERROR`: a field is invalid, or `webhook_url` may not be called "
                "(the message says why).",
            }
        ),
    },
)
async def create_export_job(
    principal: ProductsExportJob,
    export_request: Annotated[_ExportJobRequest, Depends(_export_job_request)],
    session: SessionDep,
) -> Response:
    """Export in the background: a job writes the file, then `GET /jobs/{id}/download`.

    The file holds what `GET /products/export` would stream with the same filters, for
    the products you may see when the job runs. The job's result is `{rows, bytes, format,
    download}`; with `webhook_url`, the end of the job is POSTed there, signed.
    """
    accepted = await jobs.submit(
        session,
        principal,
        kind=tasks.EXPORT_TASK,
        payload=tasks.export_payload(export_request.data),
        webhook=export_request.webhook,
    )
    return accepted_response(accepted)


@router.get(
    "",
    response_model=Envelope[list[Product]],
    responses={**NOT_MODIFIED, **errors({403: "Missing `products:read`."})},
    openapi_extra=PRODUCT_LIST.openapi,
)
async def list_products(
    request: Request,
    *,
    principal: ProductsRead,
    query: ProductList,
    if_none_match: IfNoneMatch,
    resources: ResourcesDep,
) -> Response:
    """List the products you may see: yours, shared with you, and in folders shared with you.

    In page mode the total may be reused for up to `KEEL_LIST_TOTAL_CACHE_MS` (2 s):
    writes served by the same process show at once, others' within that time.
    """
    page = await service.list_products(
        resources.db, principal, filters=query.filters, params=query.params, totals=resources.list_totals
    )
    return list_response(request, page)


@router.post(
    "",
    status_code=201,
    response_model=Envelope[Product],
    responses=errors(
        {
            403: "Missing `products:write`, or only viewer access to `folder_id`.",
            404: "`folder_id` names no folder you may see.",
        }
    ),
)
async def create_product(
    request: Request, data: ProductCreate, principal: ProductsWrite, session: SessionDep
) -> Response:
    """Create a product; you own it."""
    return _respond(request, await service.create(session, principal, data=data), status_code=201)


@router.get(
    "/{product_id:uuid}",
    response_model=Envelope[Product],
    responses={**NOT_MODIFIED, **errors({403: "Missing `products:read`.", 404: NOT_VISIBLE})},
)
async def get_product(
    request: Request,
    product_id: uuid.UUID,
    principal: ProductsRead,
    resources: ResourcesDep,
    if_none_match: IfNoneMatch,
) -> Response:
    """One product, with its strong ETag (served from the cache when it holds your view)."""
    view = await read_view(resources, "product", product_id, principal, service.view)
    if view is None:
        raise ProductNotFound()
    etag, data = view
    return resource_response(request, data, etag=etag, self_href=_href(product_id))


@router.put(
    "/{product_id:uuid}",
    response_model=Envelope[Product],
    responses=errors({403: READ_ONLY, 404: NOT_VISIBLE, 412: STALE}),
)
async def replace_product(
    request: Request,
    *,
    product_id: uuid.UUID,
    data: ProductCreate,
    principal: ProductsWrite,
    session: SessionDep,
    if_match: IfMatch,
) -> Response:
    """Replace a product: omitted optional fields return to their defaults (editor access)."""
    row = await service.update(session, principal, product_id=product_id, data=data, if_match=if_match)
    return _respond(request, row)


@router.patch(
    "/{product_id:uuid}",
    response_model=Envelope[Product],
    responses=errors({403: READ_ONLY, 404: NOT_VISIBLE, 412: STALE}),
)
async def update_product(
    request: Request,
    *,
    product_id: uuid.UUID,
    data: ProductUpdate,
    principal: ProductsWrite,
    session: SessionDep,
    if_match: IfMatch,
) -> Response:
    """Change only the fields sent (editor access)."""
    row = await service.update(session, principal, product_id=product_id, data=data, if_match=if_match)
    return _respond(request, row)


@router.delete(
    "/{product_id:uuid}",
    status_code=204,
    responses=errors(
        {403: "Only owners may delete (or `products:write` is missing).", 404: NOT_VISIBLE, 412: STALE}
    ),
)
async def delete_product(
    product_id: uuid.UUID,
    principal: ProductsWrite,
    session: SessionDep,
    if_match: IfMatch,
    meta: RequestMetaDep,
) -> Response:
    """Delete a product (soft: an admin can restore it); it disappears from reads and lists."""
    await service.delete(session, principal, product_id=product_id, if_match=if_match, meta=meta)
    return Response(status_code=204)


@router.post(
    "/{product_id:uuid}/restore",
    response_model=Envelope[Product],
    responses=errors({403: "Missing `products:admin`.", 404: "No deleted product with this id."}),
)
async def restore_product(
    request: Request,
    product_id: uuid.UUID,
    principal: ProductsAdmin,
    session: SessionDep,
    meta: RequestMetaDep,
) -> Response:
    """Restore a deleted product (admins)."""
    return _respond(request, await service.restore(session, principal, product_id=product_id, meta=meta))


add_permission_routes(router, kind="product", read=ProductsRead, write=ProductsWrite)
