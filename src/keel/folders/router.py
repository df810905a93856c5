import uuid
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from keel.audit.service import RequestMetaDep
from keel.folders import repository, service
from keel.folders.auth import FoldersRead, FoldersWrite
from keel.folders.errors import FolderNotFound
from keel.folders.repository import FolderRow
from keel.folders.schemas import Folder, FolderCreate, FolderFilters, FolderUpdate
from keel.platform.caching.views import read_view
from keel.platform.db import SessionDep
from keel.platform.http.docs import NOT_MODIFIED, errors
from keel.platform.http.envelope import Envelope, Link, RawJSON
from keel.platform.http.etag import IfMatch, IfNoneMatch, resource_response
from keel.platform.http.listing import ListParams, list_params, list_response
from keel.platform.http.routing import KeelRoute
from keel.platform.resources import ResourcesDep
from keel.products.auth import ProductsRead
from keel.products.query import PRODUCT_LIST, ProductList
from keel.products.schemas import Product
from keel.sharing.router import add_permission_routes

router = APIRouter(prefix="/api/v2/folders", tags=["folders"], route_class=KeelRoute)

Listing = Annotated[ListParams, Depends(list_params(repository.SORTING))]
NOT_VISIBLE = "No such folder among those you may see (existence is not revealed)."
READ_ONLY = "`FORBIDDEN`: you may read the folder but not change it (or lack `folders:write`)."
STALE = "`PRECONDITION_FAILED`: `If-Match` does not match the current ETag."
CONFLICTS = "`CONFLICT`: the move would make a cycle or nest deeper than 10 levels."


def _href(folder_id: uuid.UUID) -> str:
    return f"{router.prefix}/{folder_id}"


def _respond(request: Request, row: FolderRow, status_code: int = 200) -> Response:
    return _folder_response(request, row.id, service.etag(row), service.render(row), status_code)


def _folder_response(
    request: Request,
    folder_id: uuid.UUID,
    etag: str,
    data: Mapping[str, Any] | RawJSON,
    status_code: int = 200,
) -> Response:
    products = Link(href=f"{_href(folder_id)}/products", rel="products")
    return resource_response(
        request, data, etag=etag, self_href=_href(folder_id), status_code=status_code, links=[products]
    )


@router.get(
    "",
    response_model=Envelope[list[Folder]],
    responses={**NOT_MODIFIED, **errors({403: "Missing `folders:read`."})},
)
async def list_folders(
    request: Request,
    *,
    principal: FoldersRead,
    session: SessionDep,
    filters: Annotated[FolderFilters, Query()],
    params: Listing,
    if_none_match: IfNoneMatch,
) -> Response:
    """List the folders you may see: yours, shared with you, and inside those."""
    page = await service.list_folders(session, principal, filters=filters, params=params)
    return list_response(request, page)


@router.post(
    "",
    status_code=201,
    response_model=Envelope[Folder],
    responses=errors(
        {
            403: "Missing `folders:write`, or only viewer access to `parent_id`.",
            404: "`parent_id` names no folder you may see.",
            409: "`CONFLICT`: the parent is already 10 levels deep.",
        }
    ),
)
async def create_folder(
    request: Request, data: FolderCreate, principal: FoldersWrite, session: SessionDep
) -> Response:
    """Create a folder, at the top level or inside one you may edit; you own it."""
    return _respond(request, await service.create(session, principal, data=data), status_code=201)


@router.get(
    "/{folder_id:uuid}",
    response_model=Envelope[Folder],
    responses={**NOT_MODIFIED, **errors({403: "Missing `folders:read`.", 404: NOT_VISIBLE})},
)
async def get_folder(
    request: Request,
    folder_id: uuid.UUID,
    principal: FoldersRead,
    resources: ResourcesDep,
    if_none_match: IfNoneMatch,
) -> Response:
    """One folder, with its strong ETag (served from the cache when it holds your view)."""
    view = await read_view(resources, "folder", folder_id, principal, service.view)
    if view is None:
        raise FolderNotFound()
    etag, data = view
    return _folder_response(request, folder_id, etag, data)


@router.get(
    "/{folder_id:uuid}/products",
    response_model=Envelope[list[Product]],
    responses={**NOT_MODIFIED, **errors({403: "Missing `products:read`.", 404: NOT_VISIBLE})},
    openapi_extra=PRODUCT_LIST.openapi,
)
async def list_folder_products(
    request: Request,
    *,
    folder_id: uuid.UUID,
    principal: ProductsRead,
    session: SessionDep,
    query: ProductList,
    if_none_match: IfNoneMatch,
    resources: ResourcesDep,
) -> Response:
    """The products directly in a folder, with the filters and orders of `GET /products`."""
    page = await service.list_products(
        session,
        resources.db,
        principal,
        folder_id=folder_id,
        filters=query.filters,
        params=query.params,
        totals=resources.list_totals,
    )
    return list_response(request, page)


@router.put(
    "/{folder_id:uuid}",
    response_model=Envelope[Folder],
    responses=errors({403: READ_ONLY, 404: NOT_VISIBLE, 409: CONFLICTS, 412: STALE}),
)
async def replace_folder(
    request: Request,
    *,
    folder_id: uuid.UUID,
    data: FolderCreate,
    principal: FoldersWrite,
    session: SessionDep,
    if_match: IfMatch,
) -> Response:
    """Replace a folder's name, description and parent (editor access; a new parent moves it)."""
    row = await service.update(session, principal, folder_id=folder_id, data=data, if_match=if_match)
    return _respond(request, row)


@router.patch(
    "/{folder_id:uuid}",
    response_model=Envelope[Folder],
    responses=errors({403: READ_ONLY, 404: NOT_VISIBLE, 409: CONFLICTS, 412: STALE}),
)
async def update_folder(
    request: Request,
    *,
    folder_id: uuid.UUID,
    data: FolderUpdate,
    principal: FoldersWrite,
    session: SessionDep,
    if_match: IfMatch,
) -> Response:
    """Change only the fields sent (editor access)."""
    row = await service.update(session, principal, folder_id=folder_id, data=data, if_match=if_match)
    return _respond(request, row)


@router.delete(
    "/{folder_id:uuid}",
    status_code=204,
    responses=errors(
        {
            403: "Only owners may delete (or `folders:write` is missing).",
            404: NOT_VISIBLE,
            409: "`CONFLICT`: the folder is not empty and `recursive` is not set.",
            412: STALE,
        }
    ),
)
async def delete_folder(
    folder_id: uuid.UUID,
    *,
    principal: FoldersWrite,
    session: SessionDep,
    if_match: IfMatch,
    meta: RequestMetaDep,
    recursive: Annotated[
        bool, Query(description="Also delete sub-folders and (soft) the products in them.")
    ] = False,
) -> Response:
    """Delete a folder (owners only); a non-empty one only with `recursive=true`."""
    await service.delete(
        session, principal, folder_id=folder_id, recursive=recursive, if_match=if_match, meta=meta
    )
    return Response(status_code=204)


add_permission_routes(router, kind="folder", read=FoldersRead, write=FoldersWrite)
