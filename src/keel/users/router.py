from fastapi import APIRouter
from starlette.responses import Response

from keel.auth.dependencies import ProfileWrite
from keel.platform.db import SessionDep
from keel.platform.http.envelope import Envelope, ok
from keel.platform.http.routing import KeelRoute
from keel.users import service
from keel.users.schemas import ProfileUpdate, User

router = APIRouter(prefix="/api/v2/users", tags=["users"], route_class=KeelRoute)


@router.patch("/me", response_model=Envelope[User])
async def update_me(changes: ProfileUpdate, principal: ProfileWrite, session: SessionDep) -> Response:
    """Change your profile (full name). Role, plan, status and e-mail are refused with 422."""
    user = await service.get(session, principal.user_id)
    return ok(User.model_validate(await service.update_profile(session, user, changes)))
