import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from keel.audit.service import RequestMetaDep
from keel.platform.db import SessionDep
from keel.platform.http.docs import NOT_MODIFIED, errors
from keel.platform.http.envelope import Envelope, Link, ok
from keel.platform.http.etag import PRIVATE_NO_CACHE, IfMatch, IfNoneMatch, resource_response
from keel.platform.http.listing import ListParams, list_params, list_response
from keel.platform.http.routing import KeelRoute
from keel.platform.resources import ResourcesDep
from keel.webhooks import repository, service
from keel.webhooks.auth import WebhooksRead, WebhooksWrite
from keel.webhooks.repository import Rows
from keel.webhooks.schemas import (
    Delivery,
    DeliveryFilters,
    Webhook,
    WebhookCreate,
    WebhookUpdate,
    WebhookWithSecret,
)

router = APIRouter(prefix="/api/v2/webhooks", tags=["webhooks"], route_class=KeelRoute)


# The URL check looks the host up (up to seconds). As dependencies declared after the
# principal (no lookups for anonymous callers) and before the session, it runs before
# the request's transaction begins, which on SQLite holds the database's write lock.
async def _checked_create(data: WebhookCreate, resources: ResourcesDep) -> WebhookCreate:
    await service.check_url(resources.settings, data.url)
    return data


async def _checked_update(data: WebhookUpdate, resources: ResourcesDep) -> WebhookUpdate:
    if "url" in data.model_fields_set and data.url is not None:
        await service.check_url(resources.settings, data.url)
    return data


CheckedCreate = Annotated[WebhookCreate, Depends(_checked_create)]
CheckedUpdate = Annotated[WebhookUpdate, Depends(_checked_update)]

Listing = Annotated[ListParams, Depends(list_params(repository.SORTING))]
DeliveryListing = Annotated[ListParams, Depends(list_params(repository.DELIVERY_SORTING))]
DeliveryQuery = Annotated[DeliveryFilters, Query()]
NOT_YOURS = "No such webhook among yours (others' are not revealed)."
NO_DELIVERY = "No such webhook among yours, or no such delivery of it."
STALE = "`PRECONDITION_FAILED`: `If-Match` does not match the current ETag."
WRITE = "Missing `webhooks:write`."
READ = "Missing `webhooks:read`."
BAD_URL = (
    "`VALIDATION_ERROR`: invalid fields; on `url` also when it is not https (http outside "
    "production), or resolves to a private, loopback, link-local or reserved address."
)


def _href(webhook_id: uuid.UUID) -> str:
    return f"{router.prefix}/{webhook_id}"


def _respond(request: Request, row: Rows, status_code: int = 200, secret: str | None = None) -> Response:
    data = service.render(row)
    if secret is not None:
        data["secret"] = secret
    return resource_response(
        request,
        data,
        etag=service.etag(row),
        self_href=_href(row.id),
        status_code=status_code,
        # A secret is shown once: no cache may keep it, and an Idempotency-Key replay
        # stores it encrypted.
        cache_control=PRIVATE_NO_CACHE if secret is None else "no-store",
    )


def _accepted(data: dict[str, Any]) -> Response:
    href = f"{_href(data['webhook_id'])}/deliveries/{data['id']}"
    return ok(data, status_code=202, links=[Link(href=href, rel="self")], headers={"Location": href})


@router.get(
    "",
    response_model=Envelope[list[Webhook]],
    responses={**NOT_MODIFIED, **errors({403: READ})},
)
async def list_webhooks(
    request: Request,
    principal: WebhooksRead,
    session: SessionDep,
    params: Listing,
    if_none_match: IfNoneMatch,
) -> Response:
    """List your webhooks."""
    return list_response(request, await service.list_webhooks(session, principal, params=params))


@router.post(
    "",
    status_code=201,
    response_model=Envelope[WebhookWithSecret],
    responses=errors(
        {
            403: WRITE,
            409: f"`CONFLICT`: you already have {service.MAX_WEBHOOKS_PER_USER} webhooks, the most allowed.",
            422: BAD_URL,
        }
    ),
)
async def create_webhook(
    request: Request,
    *,
    principal: WebhooksWrite,
    data: CheckedCreate,
    session: SessionDep,
    resources: ResourcesDep,
    meta: RequestMetaDep,
) -> Response:
    """Subscribe a URL to events; the response carries the signing secret, this once."""
    row, secret = await service.create(session, principal, data=data, resources=resources, meta=meta)
    return _respond(request, row, status_code=201, secret=secret)


@router.get(
    "/{webhook_id:uuid}",
    response_model=Envelope[Webhook],
    responses={**NOT_MODIFIED, **errors({403: READ, 404: NOT_YOURS})},
)
async def get_webhook(
    request: Request,
    webhook_id: uuid.UUID,
    principal: WebhooksRead,
    session: SessionDep,
    if_none_match: IfNoneMatch,
) -> Response:
    """One webhook, with its strong ETag and delivery health (never its secret)."""
    return _respond(request, await service.get(session, principal, webhook_id=webhook_id))


@router.put(
    "/{webhook_id:uuid}",
    response_model=Envelope[Webhook],
    responses=errors({403: WRITE, 404: NOT_YOURS, 412: STALE, 422: BAD_URL}),
)
async def replace_webhook(
    request: Request,
    *,
    webhook_id: uuid.UUID,
    principal: WebhooksWrite,
    data: CheckedCreate,
    session: SessionDep,
    if_match: IfMatch,
    resources: ResourcesDep,
    meta: RequestMetaDep,
) -> Response:
    """Replace a webhook: omitted optional fields return to their defaults (so it is active)."""
    row = await service.update(
        session,
        principal,
        webhook_id=webhook_id,
        data=data,
        if_match=if_match,
        resources=resources,
        meta=meta,
    )
    return _respond(request, row)


@router.patch(
    "/{webhook_id:uuid}",
    response_model=Envelope[Webhook],
    responses=errors({403: WRITE, 404: NOT_YOURS, 412: STALE, 422: BAD_URL}),
)
async def update_webhook(
    request: Request,
    *,
    webhook_id: uuid.UUID,
    principal: WebhooksWrite,
    data: CheckedUpdate,
    session: SessionDep,
    if_match: IfMatch,
    resources: ResourcesDep,
    meta: RequestMetaDep,
) -> Response:
    """Change only the fields sent. `is_active: true` re-enables a disabled webhook and
    clears its failure record; `false` pauses it and cancels its pending deliveries."""
    row = await service.update(
        session,
        principal,
        webhook_id=webhook_id,
        data=data,
        if_match=if_match,
        resources=resources,
        meta=meta,
    )
    return _respond(request, row)


@router.delete(
    "/{webhook_id:uuid}",
    status_code=204,
    responses=errors({403: WRITE, 404: NOT_YOURS, 412: STALE}),
)
async def delete_webhook(
    webhook_id: uuid.UUID,
    principal: WebhooksWrite,
    session: SessionDep,
    if_match: IfMatch,
    meta: RequestMetaDep,
) -> Response:
    """Delete a webhook and its delivery history; pending deliveries stop."""
    await service.delete(session, principal, webhook_id=webhook_id, if_match=if_match, meta=meta)
    return Response(status_code=204)


@router.post(
    "/{webhook_id:uuid}/rotate-secret",
    response_model=Envelope[WebhookWithSecret],
    responses=errors({403: WRITE, 404: NOT_YOURS, 412: STALE}),
)
async def rotate_webhook_secret(
    request: Request,
    *,
    webhook_id: uuid.UUID,
    principal: WebhooksWrite,
    session: SessionDep,
    if_match: IfMatch,
    resources: ResourcesDep,
    meta: RequestMetaDep,
) -> Response:
    """Replace the signing secret; the response carries the new one, this once.

    Deliveries are signed with both the new and the previous secret for
    `KEEL_WEBHOOK_SECRET_OVERLAP_HOURS` (24 h), so receivers can switch without losing any.
    """
    row, secret = await service.rotate_secret(
        session, principal, webhook_id=webhook_id, if_match=if_match, resources=resources, meta=meta
    )
    return _respond(request, row, secret=secret)


@router.post(
    "/{webhook_id:uuid}/test",
    status_code=202,
    response_model=Envelope[Delivery],
    responses=errors({403: WRITE, 404: NOT_YOURS, 409: "`CONFLICT`: the webhook is disabled."}),
)
async def test_webhook(webhook_id: uuid.UUID, principal: WebhooksWrite, session: SessionDep) -> Response:
    """Send a `webhook.test` event to this webhook now (queued; follow the delivery)."""
    return _accepted(await service.send_test(session, principal, webhook_id=webhook_id))


@router.get(
    "/{webhook_id:uuid}/deliveries",
    response_model=Envelope[list[Delivery]],
    responses={**NOT_MODIFIED, **errors({403: READ, 404: NOT_YOURS})},
)
async def list_deliveries(
    request: Request,
    *,
    webhook_id: uuid.UUID,
    principal: WebhooksRead,
    session: SessionDep,
    filters: DeliveryQuery,
    params: DeliveryListing,
    if_none_match: IfNoneMatch,
) -> Response:
    """A webhook's deliveries, newest first, each with every attempt."""
    page = await service.list_deliveries(
        session, principal, webhook_id=webhook_id, filters=filters, params=params
    )
    return list_response(request, page)


@router.get(
    "/{webhook_id:uuid}/deliveries/{delivery_id:uuid}",
    response_model=Envelope[Delivery],
    responses=errors({403: READ, 404: NO_DELIVERY}),
)
async def get_delivery(
    webhook_id: uuid.UUID, delivery_id: uuid.UUID, principal: WebhooksRead, session: SessionDep
) -> Response:
    """One delivery with every attempt."""
    data = await service.get_delivery(session, principal, webhook_id=webhook_id, delivery_id=delivery_id)
    href = f"{_href(webhook_id)}/deliveries/{delivery_id}"
    return ok(data, links=[Link(href=href, rel="self")], headers={"Cache-Control": PRIVATE_NO_CACHE})


@router.post(
    "/{webhook_id:uuid}/deliveries/{delivery_id:uuid}/redeliver",
    status_code=202,
    response_model=Envelope[Delivery],
    responses=errors(
        {
            403: WRITE,
            404: NO_DELIVERY,
            409: "`CONFLICT`: the delivery is still pending, or the webhook is disabled.",
        }
    ),
)
async def redeliver(
    webhook_id: uuid.UUID, delivery_id: uuid.UUID, principal: WebhooksWrite, session: SessionDep
) -> Response:
    """Send a finished delivery again: the same message and `webhook-id`, a new series of attempts."""
    data = await service.redeliver(session, principal, webhook_id=webhook_id, delivery_id=delivery_id)
    return _accepted(data)
