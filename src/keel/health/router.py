from typing import Annotated

from fastapi import APIRouter, Query
from starlette.responses import Response

from keel.health import service
from keel.health.schemas import Liveness, Readiness
from keel.platform.http.envelope import Envelope, ErrorEnvelope, error_item, error_response, ok
from keel.platform.http.routing import KeelRoute
from keel.platform.resources import ResourcesDep

router = APIRouter(tags=["health"], route_class=KeelRoute)

_READINESS_RESPONSES: dict[int | str, dict[str, object]] = {
    503: {"model": ErrorEnvelope, "description": "A required dependency is down; `meta.checks` says which."}
}


@router.get(
    "/health",
    response_model=Envelope[Liveness] | Envelope[Readiness],
    responses=_READINESS_RESPONSES,
)
async def health(
    resources: ResourcesDep,
    detailed: Annotated[bool, Query(description="Run the readiness checks (same as /health/deep).")] = False,
) -> Response:
    """Liveness: cheap, no I/O. With `detailed=true`, the readiness checks."""
    if detailed:
        return await _readiness_response(resources)
    return ok(service.liveness(resources))


@router.get("/health/deep", response_model=Envelope[Readiness], responses=_READINESS_RESPONSES)
async def health_deep(resources: ResourcesDep) -> Response:
    """Readiness: database round trip, migration head, Redis; 503 if a required one is down."""
    return await _readiness_response(resources)


async def _readiness_response(resources: ResourcesDep) -> Response:
    report = await service.readiness(resources)
    if report.status != "unavailable":
        return ok(report)
    down = [name for name, check in report.checks.items() if check.required and check.status == "down"]
    items = [
        error_item(503, message=f"{name} is unavailable: {report.checks[name].detail}", field=name)
        for name in down
    ]
    meta = {"status": report.status, "checks": {k: v.model_dump() for k, v in report.checks.items()}}
    return error_response(503, items, meta=meta, headers={"Retry-After": "5"})
