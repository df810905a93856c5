from typing import Annotated

from fastapi import APIRouter, Depends
from starlette.responses import Response

from keel.audit import service as audit
from keel.audit.service import RequestMetaDep
from keel.auth.dependencies import require
from keel.cache import service
from keel.cache.schemas import CacheStats, InvalidateRequest, InvalidateResult, WarmResult
from keel.platform.db import SessionDep
from keel.platform.http.docs import errors
from keel.platform.http.envelope import Envelope, ok
from keel.platform.http.routing import KeelRoute
from keel.platform.resources import ResourcesDep
from keel.platform.security.principal import Principal

router = APIRouter(prefix="/api/v2/cache", tags=["cache"], route_class=KeelRoute)

CacheAdmin = Annotated[Principal, Depends(require("cache:admin"))]
FORBIDDEN = errors({403: "Missing `cache:admin` (admins)."})


@router.get("/stats", response_model=Envelope[CacheStats], responses=FORBIDDEN)
async def cache_stats(principal: CacheAdmin, resources: ResourcesDep) -> Response:
    """Hit rate and size. With Redis the size is shared by every replica; the request
    counts are this process's."""
    return ok(await service.stats(resources))


@router.post("/warm", response_model=Envelope[WarmResult], responses=FORBIDDEN)
async def warm_cache(
    principal: CacheAdmin, resources: ResourcesDep, session: SessionDep, meta: RequestMetaDep
) -> Response:
    """Load the most requested entries again (`KEEL_CACHE_WARM_LIMIT`), each as its viewer:
    an entry whose viewer may no longer see the resource is dropped, never refilled."""
    result = await service.warm_hottest(resources)
    audit.record(
        session,
        meta,
        action="cache.warmed",
        actor=principal,
        detail={"warmed_entries": result.warmed_entries},
    )
    return ok(result)


@router.post("/invalidate", response_model=Envelope[InvalidateResult], responses=FORBIDDEN)
async def invalidate_cache(
    data: InvalidateRequest,
    principal: CacheAdmin,
    resources: ResourcesDep,
    session: SessionDep,
    meta: RequestMetaDep,
) -> Response:
    """Drop entries by exact key and/or glob pattern."""
    result = await service.invalidate(resources, data)
    audit.record(
        session,
        meta,
        action="cache.invalidated",
        actor=principal,
        detail={"keys": len(data.keys), "pattern": data.pattern, "invalidated": result.invalidated},
    )
    return ok(result)
