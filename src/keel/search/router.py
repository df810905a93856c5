from typing import Annotated

from fastapi import APIRouter, Query
from starlette.responses import Response

from keel.auth.dependencies import CurrentPrincipal
from keel.platform.db import SessionDep
from keel.platform.http.docs import errors
from keel.platform.http.envelope import Envelope
from keel.platform.http.errors import Forbidden
from keel.platform.http.pagination import PageParamsDep
from keel.platform.http.routing import KeelRoute
from keel.search import service
from keel.search.schemas import SearchHit, SearchText, SearchType

router = APIRouter(prefix="/api/v2/search", tags=["search"], route_class=KeelRoute)


# What each type searches, and the permission it needs.
SEARCHES = {
    "chunks": (service.search_chunks, "documents:read"),
    "products": (service.search_products, "products:read"),
}


@router.get(
    "",
    response_model=Envelope[list[SearchHit]],
    responses=errors({403: "Missing `documents:read` (chunks) or `products:read` (products)."}),
)
async def search(
    principal: CurrentPrincipal,
    session: SessionDep,
    params: PageParamsDep,
    q: Annotated[SearchText, Query(description="Words to find (all of them; accents and case ignored).")],
    type: Annotated[
        SearchType,
        Query(description="What to search: `chunks` of documents, or `products` (name and description)."),
    ] = "chunks",
) -> Response:
    """Full-text search over what you may see, best first: the chunks of ready documents
    (each hit has `type: chunk`), or live products (`type: product`).

    What you type is never query syntax: `AND ( "` is a search for nothing, not an error.
    """
    run, permission = SEARCHES[type]
    if not principal.can(permission):
        raise Forbidden(f"Missing permission: {permission}.")
    return (await run(session, principal, q=q, params=params)).response()
