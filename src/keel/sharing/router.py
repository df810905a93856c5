"""The permission endpoints, the same for folders and products: added to each domain's
router by :func:`add_permission_routes`, so the two cannot drift apart."""

import uuid
from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from keel.audit.service import RequestMetaDep
from keel.platform.db import SessionDep
from keel.platform.http.docs import errors
from keel.platform.http.envelope import Envelope, ok
from keel.sharing import service
from keel.sharing.schemas import Grant, GrantCreate
from keel.sharing.service import Kind


def add_permission_routes(router: APIRouter, *, kind: Kind, read: Any, write: Any) -> None:
    """``GET/POST {prefix}/{id}/permissions`` and ``DELETE {prefix}/{id}/permissions/{user_id}``.

    ``read`` and ``write`` are the domain's permission dependencies (``Annotated`` aliases).
    """
    not_visible = f"No such {kind} among those you may see (existence is not revealed)."

    async def list_permissions(resource_id: uuid.UUID, principal: read, session: SessionDep) -> Response:
        grants = await service.list_grants(session, principal, kind=kind, resource_id=resource_id)
        return ok(grants)

    async def share(
        resource_id: uuid.UUID,
        data: GrantCreate,
        principal: write,
        session: SessionDep,
        meta: RequestMetaDep,
    ) -> Response:
        grant, created = await service.grant(
            session, principal, kind=kind, resource_id=resource_id, data=data, meta=meta
        )
        return ok(grant, status_code=201 if created else 200)

    async def unshare(
        resource_id: uuid.UUID,
        user_id: uuid.UUID,
        principal: write,
        session: SessionDep,
        meta: RequestMetaDep,
    ) -> Response:
        await service.revoke(
            session, principal, kind=kind, resource_id=resource_id, user_id=user_id, meta=meta
        )
        return Response(status_code=204)

    router.add_api_route(
        "/{resource_id:uuid}/permissions",
        list_permissions,
        methods=["GET"],
        name=f"list_{kind}_permissions",
        summary=f"Who the {kind} is shared with (owners only).",
        response_model=Envelope[list[Grant]],
        responses=errors({403: "Only owners may see who else has access.", 404: not_visible}),
    )
    router.add_api_route(
        "/{resource_id:uuid}/permissions",
        share,
        methods=["POST"],
        status_code=201,
        name=f"share_{kind}",
        summary=f"Share the {kind} with a user as viewer, editor or owner (owners only).",
        description="201 when the user gets access, 200 when their level changes. "
        + ("A folder grant covers its sub-folders and every product in them." if kind == "folder" else ""),
        response_model=Envelope[Grant],
        responses={
            200: {"model": Envelope[Grant], "description": "The user already had access: level changed."},
            **errors(
                {
                    403: "Only owners may share.",
                    404: not_visible,
                    422: "Validation failed, or no active account matches, or it is you.",
                }
            ),
        },
    )
    router.add_api_route(
        "/{resource_id:uuid}/permissions/{user_id:uuid}",
        unshare,
        methods=["DELETE"],
        status_code=204,
        name=f"unshare_{kind}",
        summary=f"Take a user's access to the {kind} away (owners only).",
        responses=errors(
            {403: "Only owners may revoke access.", 404: not_visible + " Or the user has no grant."}
        ),
    )
