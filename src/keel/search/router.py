from typing import Annotated

from fastapi import APIRouter, Query
from starlette.responses import Response

from keel.documents.auth import DocumentsRead
from keel.platform.db import SessionDep
from keel.platform.http.docs import errors
from keel.platform.http.envelope import Envelope
from keel.platform.http.pagination import PageParamsDep
from keel.platform.http.routing import KeelRoute
from keel.search import service
from keel.search.schemas import ChunkHit, SearchText, SearchType

router = APIRouter(prefix="/api/v2/search", tags=["search"], route_class=KeelRoute)


@router.get("", response_model=Envelope[list[ChunkHit]], responses=errors({403: "Missing `documents:read`."}))
async def search(
    principal: DocumentsRead,
    session: SessionDep,
    params: PageParamsDep,
    q: Annotated[SearchText, Query(description="Words to find (all of them; accents and case ignored).")],
    type: Annotated[SearchType, Query(description="What to search: `chunks` of your documents.")] = "chunks",
) -> Response:
    """Full-text search over the chunks of the ready documents you may see, best first.

    What you type is never query syntax: `AND ( "` is a search for nothing, not an error.
    """
    return (await service.search_chunks(session, principal, q=q, params=params)).response()
