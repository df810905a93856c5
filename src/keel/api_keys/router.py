import uuid
from typing import Annotated

from fastapi import APIRouter, Query
from starlette.responses import Response

from keel.api_keys import service
from keel.api_keys.schemas import ApiKey, ApiKeyCreate, ApiKeyCreated
from keel.audit.service import RequestMetaDep
from keel.auth.dependencies import ApiKeysRead, ApiKeysWrite
from keel.platform.db import SessionDep
from keel.platform.http.docs import errors
from keel.platform.http.envelope import Envelope, ok
from keel.platform.http.pagination import PageParamsDep
from keel.platform.http.routing import KeelRoute
from keel.platform.resources import ResourcesDep

router = APIRouter(prefix="/api/v2/api-keys", tags=["api-keys"], route_class=KeelRoute)

# The secret must never be stored by a cache between the server and the client.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@router.post(
    "",
    status_code=201,
    response_model=Envelope[ApiKeyCreated],
    responses=errors(
        {
            403: "Missing `api_keys:write` (an API key needs it among its scopes).",
            409: "`CONFLICT`: the caller already has 50 live keys.",
        }
    ),
)
async def create_api_key(
    data: ApiKeyCreate, principal: ApiKeysWrite, session: SessionDep, meta: RequestMetaDep
) -> Response:
    """Create an API key; the response holds its secret, shown this once.

    Every scope must be a permission the caller holds now: a scope beyond the owner's role
    (or, when an API key calls, beyond that key's own scopes) is refused with 422 and field
    `scopes.N` rather than accepted as a scope that could never be used.
    """
    key, secret = await service.create(session, principal, data=data, meta=meta)
    body = ApiKeyCreated(**ApiKey.model_validate(key).model_dump(), secret=secret)
    return ok(body, status_code=201, headers={"Location": f"{router.prefix}/{key.id}", **NO_STORE})


@router.get("", response_model=Envelope[list[ApiKey]], responses=errors({403: "Missing `api_keys:read`."}))
async def list_api_keys(
    principal: ApiKeysRead,
    session: SessionDep,
    params: PageParamsDep,
    include_revoked: Annotated[
        bool,
        Query(description="Also list revoked keys (with `revoked_at` set); by default they are left out."),
    ] = False,
) -> Response:
    """Your API keys, newest first (never their secrets); expired keys are included."""
    keys = await service.list_keys(session, principal, params=params, include_revoked=include_revoked)
    page = keys.map(ApiKey.model_validate)
    return page.response()


@router.get(
    "/{key_id}",
    response_model=Envelope[ApiKey],
    responses=errors(
        {
            403: "Missing `api_keys:read`.",
            404: "No such live key among yours.",
        }
    ),
)
async def get_api_key(key_id: uuid.UUID, principal: ApiKeysRead, session: SessionDep) -> Response:
    """One of your live API keys; a revoked key, like another user's, is 404.

    Revoked keys stay visible in the list with `include_revoked=true`.
    """
    return ok(ApiKey.model_validate(await service.get(session, principal, key_id=key_id)))


@router.delete(
    "/{key_id}",
    status_code=204,
    responses=errors(
        {403: "Missing `api_keys:write`.", 404: "No such live key among yours (or already revoked)."}
    ),
)
async def revoke_api_key(
    key_id: uuid.UUID,
    principal: ApiKeysWrite,
    session: SessionDep,
    resources: ResourcesDep,
    meta: RequestMetaDep,
) -> Response:
    """Revoke one of your API keys: it stops working at once."""
    await service.revoke(session, principal, key_id=key_id, principals=resources.security.api_keys, meta=meta)
    return Response(status_code=204)
