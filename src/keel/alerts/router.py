import uuid
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from keel.alerts import service
from keel.alerts.auth import AlertsRead, AlertsWrite
from keel.alerts.schemas import AcknowledgeRequest, AcknowledgeResult, Alert, AlertDetail, AlertFilters
from keel.audit.service import RequestMetaDep
from keel.platform.db import SessionDep
from keel.platform.http.docs import errors
from keel.platform.http.envelope import Envelope, Link, ok
from keel.platform.http.pagination import link_header, quote_path
from keel.platform.http.routing import KeelRoute

router = APIRouter(prefix="/api/v2/alerts", tags=["alerts"], route_class=KeelRoute)

READ_ERRORS = errors({403: "Missing `alerts:read` (admins and moderators)."})
NOT_FOUND = "No alert with this id."


def _page_links(request: Request, filters: AlertFilters, total: int) -> list[Link]:
    kept = [(k, v) for k, v in request.query_params.multi_items() if k not in ("limit", "offset")]

    def href(offset: int) -> str:
        query = urlencode([*kept, ("limit", str(filters.limit)), ("offset", str(offset))])
        return f"{quote_path(request.url.path)}?{query}"

    links = []
    if filters.offset > 0:
        links.append(Link(href=href(max(min(filters.offset, total) - filters.limit, 0)), rel="prev"))
    if filters.offset + filters.limit < total:
        links.append(Link(href=href(filters.offset + filters.limit), rel="next"))
    return links


@router.get("", response_model=Envelope[list[Alert]], responses=READ_ERRORS)
async def list_alerts(
    request: Request,
    principal: AlertsRead,
    session: SessionDep,
    filters: Annotated[AlertFilters, Query()],
) -> Response:
    """List alerts, newest first; filter by status and severity; page with limit and offset."""
    page = await service.list_alerts(session, principal, filters=filters)
    links = _page_links(request, filters, page.total)
    meta: dict[str, Any] = {
        "pagination": {
            "total": page.total,
            "limit": filters.limit,
            "offset": filters.offset,
            "has_next": filters.offset + filters.limit < page.total,
            "has_prev": filters.offset > 0,
        }
    }
    headers = {"Link": link_header(links)} if links else None
    return ok([Alert.model_validate(a) for a in page.items], links=links, meta=meta, headers=headers)


@router.post(
    "/acknowledge",
    response_model=Envelope[AcknowledgeResult],
    responses=errors({403: "Missing `alerts:write` (admins and moderators)."}),
)
async def acknowledge_alerts(
    data: AcknowledgeRequest, principal: AlertsWrite, session: SessionDep, meta: RequestMetaDep
) -> Response:
    """Acknowledge pending alerts; ids that are unknown, acknowledged or resolved are listed in `failed`."""
    return ok(await service.acknowledge(session, principal, alert_ids=data.alert_ids, meta=meta))


@router.get(
    "/{alert_id:uuid}",
    response_model=Envelope[AlertDetail],
    responses=errors({403: "Missing `alerts:read` (admins and moderators).", 404: NOT_FOUND}),
)
async def get_alert(alert_id: uuid.UUID, principal: AlertsRead, session: SessionDep) -> Response:
    """One alert, with the context its rule saw."""
    return ok(service.render(await service.get_alert(session, principal, alert_id=alert_id)))


@router.post(
    "/{alert_id:uuid}/resolve",
    response_model=Envelope[AlertDetail],
    responses=errors(
        {
            403: "Missing `alerts:write` (admins and moderators).",
            404: NOT_FOUND,
            409: "The alert is already resolved.",
        }
    ),
)
async def resolve_alert(
    alert_id: uuid.UUID, principal: AlertsWrite, session: SessionDep, meta: RequestMetaDep
) -> Response:
    """Resolve an open alert by hand; if its condition still holds, a new one opens after the rule's `for`."""
    alert = await service.resolve(session, principal, alert_id=alert_id, meta=meta)
    return ok(service.render(alert))
