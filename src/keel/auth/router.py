from typing import Annotated

from fastapi import APIRouter, Form
from starlette.responses import JSONResponse, Response

from keel.audit.service import RequestMetaDep
from keel.auth import service
from keel.auth.dependencies import TOKEN_URL, CurrentPrincipal, ProfileRead
from keel.auth.schemas import (
    FormOtp,
    Login,
    LoginEmail,
    LoginPassword,
    MfaDisable,
    MfaEnable,
    MfaSetup,
    PasswordChange,
    Refresh,
    Register,
    TokenPair,
)
from keel.platform.db import SessionDep
from keel.platform.http.envelope import Envelope, ok
from keel.platform.http.routing import KeelRoute
from keel.platform.resources import ResourcesDep
from keel.users import service as users
from keel.users.schemas import User

router = APIRouter(prefix="/api/v2/auth", tags=["auth"], route_class=KeelRoute)

# Tokens must never be stored by a cache between the server and the client.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@router.post("/register", status_code=201, response_model=Envelope[User])
async def register(
    data: Register, session: SessionDep, resources: ResourcesDep, meta: RequestMetaDep
) -> Response:
    """Create an account (409 if the e-mail is taken, 422 if the password is refused)."""
    user = await service.register(session, resources, data, meta)
    return ok(User.model_validate(user), status_code=201, headers={"Location": "/api/v2/auth/me"})


@router.post("/login", response_model=Envelope[TokenPair])
async def login(data: Login, session: SessionDep, resources: ResourcesDep, meta: RequestMetaDep) -> Response:
    """Exchange e-mail + password (+ otp when MFA is on) for an access and a refresh token."""
    return ok(await service.login(session, resources, data, meta), headers=NO_STORE)


@router.post("/token", response_model=TokenPair)
async def token(
    *,
    username: Annotated[LoginEmail, Form(description="The account's e-mail.")],
    password: Annotated[LoginPassword, Form(description="The account's password.")],
    session: SessionDep,
    resources: ResourcesDep,
    meta: RequestMetaDep,
    otp: Annotated[FormOtp | None, Form(description="One-time code, when MFA is on.")] = None,
) -> Response:
    """OAuth2 password grant (form fields), for Swagger's Authorize button.

    Answers the bare RFC 6749 token response, not the envelope, because OAuth2 clients
    read `access_token` at the top level. Errors use the envelope.
    """
    pair = await service.login(
        session, resources, Login(email=username, password=password, otp=otp or None), meta
    )
    return JSONResponse(pair.model_dump(), headers=NO_STORE)


@router.post("/refresh", response_model=Envelope[TokenPair])
async def refresh(
    data: Refresh, session: SessionDep, resources: ResourcesDep, meta: RequestMetaDep
) -> Response:
    """Rotate a refresh token; reusing an old one ends the whole session."""
    return ok(await service.refresh(session, resources, data.refresh_token, meta), headers=NO_STORE)


@router.post("/logout", status_code=204)
async def logout(
    principal: CurrentPrincipal, session: SessionDep, resources: ResourcesDep, meta: RequestMetaDep
) -> Response:
    """End this session: its refresh tokens and its access token stop working at once."""
    await service.logout(session, resources, principal, meta)
    return Response(status_code=204)


@router.get("/me", response_model=Envelope[User])
async def me(principal: ProfileRead, session: SessionDep) -> Response:
    """The calling account."""
    return ok(User.model_validate(await users.get(session, principal.user_id)))


@router.post("/password", status_code=204)
async def change_password(
    data: PasswordChange,
    principal: CurrentPrincipal,
    session: SessionDep,
    resources: ResourcesDep,
    meta: RequestMetaDep,
) -> Response:
    """Change the password (needs the current one); every other session is ended."""
    await service.change_password(session, resources, principal, data, meta)
    return Response(status_code=204)


@router.post("/mfa/setup", response_model=Envelope[MfaSetup])
async def mfa_setup(
    principal: CurrentPrincipal, session: SessionDep, resources: ResourcesDep, meta: RequestMetaDep
) -> Response:
    """Start MFA set-up: a TOTP secret, its otpauth URI and recovery codes (shown once)."""
    secret, uri, codes = await service.mfa_setup(session, resources, principal, meta)
    return ok(MfaSetup(secret=secret, otpauth_uri=uri, recovery_codes=codes), headers=NO_STORE)


@router.post("/mfa/enable", response_model=Envelope[User])
async def mfa_enable(
    data: MfaEnable,
    principal: CurrentPrincipal,
    session: SessionDep,
    resources: ResourcesDep,
    meta: RequestMetaDep,
) -> Response:
    """Turn MFA on with a current code; from now on login needs `otp`."""
    return ok(User.model_validate(await service.mfa_enable(session, resources, principal, data.otp, meta)))


@router.post("/mfa/disable", response_model=Envelope[User])
async def mfa_disable(
    data: MfaDisable,
    principal: CurrentPrincipal,
    session: SessionDep,
    resources: ResourcesDep,
    meta: RequestMetaDep,
) -> Response:
    """Turn MFA off (needs the password and a code)."""
    return ok(User.model_validate(await service.mfa_disable(session, resources, principal, data, meta)))


__all__ = ["TOKEN_URL", "router"]
