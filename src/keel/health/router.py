from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError
from starlette.responses import Response

from keel.health import service
from keel.health.schemas import Liveness, Readiness
from keel.platform.http.envelope import Envelope, ErrorEnvelope, error_item, error_response, ok
from keel.platform.http.routing import KeelRoute
from keel.platform.resources import Resources, ResourcesDep

router = APIRouter(tags=["health"], route_class=KeelRoute)

_READINESS_RESPONSES: dict[int | str, dict[str, object]] = {
    503: {"model": ErrorEnvelope, "description": "A required dependency is down; `meta.checks` says which."}
}
_DETAILED_PARAMETER = {
    "name": "detailed",
    "in": "query",
    "required": False,
    "schema": {"type": "boolean", "default": False},
    "description": "Run the readiness checks (same as /health/deep).",
}
_BOOL = TypeAdapter(bool)


def _detailed(request: Request) -> bool:
    raw = request.query_params.get("detailed")
    if raw is None:
        return False
    try:
        return _BOOL.validate_python(raw)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**error, "loc": ("query", "detailed")} for error in exc.errors(include_url=False)]
        ) from None


@router.get(
    "/health",
    response_model=Envelope[Liveness] | Envelope[Readiness],
    responses=_READINESS_RESPONSES,
    openapi_extra={"parameters": [_DETAILED_PARAMETER]},
)
async def health(request: Request) -> Response:
    """Liveness: cheap, no I/O. With `detailed=true`, the readiness checks."""
    # Probed every few seconds by every orchestrator: no dependencies and no declared
    # parameters, whose resolution by FastAPI costs more than the rest of the request.
    resources: Resources = request.app.state.resources
    if request.scope["query_string"] and _detailed(request):
        return await _readiness_response(resources)
    return ok(service.liveness(resources))


@router.get("/health/deep", response_model=Envelope[Readiness], responses=_READINESS_RESPONSES)
async def health_deep(resources: ResourcesDep) -> Response:
    """Readiness: database round trip, migration head, Redis; 503 if a required one is down."""
    return await _readiness_response(resources)


async def _readiness_response(resources: Resources) -> Response:
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
