import hmac
from typing import Annotated

from fastapi import APIRouter, Header
from starlette.responses import Response

from keel.platform.http.errors import AuthenticationRequired
from keel.platform.http.routing import KeelRoute
from keel.platform.resources import ResourcesDep

router = APIRouter(tags=["metrics"], route_class=KeelRoute)


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
