import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query
from starlette.responses import Response

from keel.auth.dependencies import require
from keel.metrics.schemas import MetricsSummary, Period
from keel.platform.db import SessionDep
from keel.platform.db.base import utcnow
from keel.platform.http.docs import errors
from keel.platform.http.envelope import Envelope, ok
from keel.platform.http.errors import AuthenticationRequired
from keel.platform.http.routing import KeelRoute
from keel.platform.resources import ResourcesDep
from keel.platform.security.principal import Principal

router = APIRouter(tags=["metrics"], route_class=KeelRoute)
summary_router = APIRouter(prefix="/api/v2/metrics", tags=["metrics"], route_class=KeelRoute)

MetricsRead = Annotated[Principal, Depends(require("metrics:read"))]
PeriodQuery = Annotated[Period, Query(description="How far back: the last hour, day or week.")]


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "content": {"text/plain": {"schema": {"type": "string"}}},
            "description": "Prometheus text format.",
        }
    },
)
async def prometheus_metrics(
    resources: ResourcesDep,
    authorization: Annotated[
        str | None, Header(description="`Bearer <KEEL_METRICS_TOKEN>` when one is configured.")
    ] = None,
) -> Response:
    """Prometheus metrics (text format); needs the metrics token when one is configured."""
    token = resources.settings.metrics_token
    if token is not None:
        expected = f"Bearer {token.get_secret_value()}".encode()
        if not hmac.compare_digest((authorization or "").encode(), expected):
            raise AuthenticationRequired(
                "A valid metrics token is required.", headers={"WWW-Authenticate": "Bearer"}
            )
    return Response(resources.metrics.render(), media_type=resources.metrics.content_type)


SUMMARY_ERRORS = errors(
    {
        403: "Missing `metrics:read` (admins and moderators).",
        503: "The statistics' store (Redis) is not answering.",
    }
)


@summary_router.get("/summary", response_model=Envelope[MetricsSummary], responses=SUMMARY_ERRORS)
async def metrics_summary(
    principal: MetricsRead, session: SessionDep, resources: ResourcesDep, period: PeriodQuery = "1h"
) -> Response:
    """Requests per second, error rates and latency percentiles per route and overall,
    merged across every replica. Up to date within `KEEL_METRICS_FLUSH_SECONDS`."""
    summary = await resources.stats.summary(session, period, utcnow())
    return ok(MetricsSummary.model_validate(summary))


@summary_router.get("", response_model=Envelope[MetricsSummary], responses=SUMMARY_ERRORS)
async def metrics(
    principal: MetricsRead, session: SessionDep, resources: ResourcesDep, period: PeriodQuery = "1h"
) -> Response:
    """The same summary as `GET /metrics/summary`."""
    return await metrics_summary(principal, session, resources, period)
