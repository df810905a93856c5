"""Who is calling, resolved once per request, and what they may do.

A bearer JWT is verified locally (no I/O); its session is then checked against a
per-process cache that trusts an answer for ``KEEL_SESSION_CACHE_MS`` (1 s by default),
with the database as the truth. So a request costs one dictionary lookup, not one
query, and a revoked session stops working within that time in every process (at
once in the process that revoked it). API keys resolve the same way, by hash.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated

import structlog
from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer
from fastapi.security.utils import get_authorization_scheme_param
from sqlalchemy.exc import SQLAlchemyError
from starlette.types import Scope

from keel.api_keys import repository as api_keys
from keel.auth import repository
from keel.auth.errors import AuthenticationRequired, Forbidden, InvalidToken, TokenExpired
from keel.platform.db.base import utcnow
from keel.platform.db.engine import SQLITE_BEGIN_OPTION
from keel.platform.http.errors import KeelError
from keel.platform.resources import Resources
from keel.platform.security.permissions import effective_permissions
from keel.platform.security.principal import Principal
from keel.platform.security.tokens import TokenError, sha256_hex

log = structlog.get_logger("keel.auth")

API_KEY_PREFIX = "keel_"
TOKEN_URL = "/api/v2/auth/token"  # noqa: S105 - a path, not a secret
# Documented in OpenAPI (and drive Swagger's Authorize); parsing is done below.
_bearer = OAuth2PasswordBearer(tokenUrl=TOKEN_URL, auto_error=False)
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="An API key (`keel_…`).")
_WWW_AUTHENTICATE = {"WWW-Authenticate": 'Bearer realm="keel"'}


async def _session_principal(resources: Resources, token: str) -> Principal:
    security = resources.security
    try:
        claims = security.access_tokens.decode(token)
    except TokenError as exc:
        error = TokenExpired if exc.code == "TOKEN_EXPIRED" else InvalidToken
        raise error(exc.message, headers=_WWW_AUTHENTICATE) from None

    async def load() -> Principal | None:
        async with resources.db.sessionmaker() as session:
            identity = await repository.identity_of_session(session, claims.session_id, utcnow())
        if identity is None:
            return None
        user_id, role, plan = identity
        return Principal(
            user_id=user_id,
            role=role,
            plan=plan,
            permissions=effective_permissions(role),
            session_id=claims.session_id,
        )

    principal = await security.sessions.get_or_load(claims.session_id, load)
    if principal is None or principal.user_id != claims.user_id:
        raise InvalidToken("The session has ended.", headers=_WWW_AUTHENTICATE)
    return principal


async def _key_principal(resources: Resources, secret: str) -> Principal:
    key_hash = sha256_hex(secret)

    async def load() -> Principal | None:
        now = utcnow()
        async with resources.db.sessionmaker() as session:
            identity = await api_keys.identity_of_key(session, key_hash, now)
        if identity is None:
            return None
        key_id, user_id, role, plan, scopes = identity
        await _touch(resources, key_id, now)
        return Principal(
            user_id=user_id,
            role=role,
            plan=plan,
            permissions=effective_permissions(role, scopes),
            api_key_id=key_id,
        )

    principal = await resources.security.api_keys.get_or_load(key_hash, load)
    if principal is None:
        raise InvalidToken("The API key is invalid, expired or revoked.", headers=_WWW_AUTHENTICATE)
    return principal


async def _touch(resources: Resources, key_id: uuid.UUID, now: datetime) -> None:
    """Record ``last_used_at`` (at most once per cache period per process, not per
    request). Best effort: a busy database must not fail the request being served."""
    try:
        async with resources.db.sessionmaker() as session:
            if resources.db.is_sqlite:
                await session.connection(execution_options={SQLITE_BEGIN_OPTION: "IMMEDIATE"})
            await api_keys.touch(session, key_id, now)
            await session.commit()
    except SQLAlchemyError:
        log.warning("api_keys.touch.failed", key_id=str(key_id), exc_info=True)


# The parameters ``bearer`` and ``api_key`` below document the schemes in OpenAPI;
# resolve_caller reads the same headers the same way, and has usually run already (in
# the rate limiter).
Bearer = Annotated[str | None, Depends(_bearer)]
ApiKey = Annotated[str | None, Depends(_api_key)]


async def _caller(request: Request) -> Principal | None:
    principal = await resolve_caller(request.scope)
    if principal is not None:
        request.state.principal = principal.actor_id
    return principal


async def _authenticated(request: Request) -> Principal:
    principal = await _caller(request)
    if principal is None:
        raise AuthenticationRequired(headers=_WWW_AUTHENTICATE)
    return principal


async def optional_principal(request: Request, bearer: Bearer, api_key: ApiKey) -> Principal | None:
    return await _caller(request)


async def _principal(resources: Resources, api_key: str | None, bearer: str | None) -> Principal | None:
    if api_key:
        return await _key_principal(resources, api_key)
    if bearer and bearer.startswith(API_KEY_PREFIX):
        return await _key_principal(resources, bearer)
    if bearer:
        return await _session_principal(resources, bearer)
    return None


async def current_principal(request: Request, bearer: Bearer, api_key: ApiKey) -> Principal:
    return await _authenticated(request)


def require(*permissions: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency that authenticates and checks every permission (403 otherwise).
    One dependency, not a chain: FastAPI's cost is per dependency, on every request."""

    async def check(request: Request, bearer: Bearer, api_key: ApiKey) -> Principal:
        principal = await _authenticated(request)
        missing = [permission for permission in permissions if not principal.can(permission)]
        if missing:
            raise Forbidden(f"Missing permission: {', '.join(missing)}.")
        return principal

    check.__name__ = f"require_{'_'.join(p.replace(':', '_') for p in permissions)}"
    return check


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
ProfileRead = Annotated[Principal, Depends(require("profile:read"))]
ProfileWrite = Annotated[Principal, Depends(require("profile:write"))]
UsersAdmin = Annotated[Principal, Depends(require("users:admin"))]
AuditRead = Annotated[Principal, Depends(require("audit:read"))]
ApiKeysRead = Annotated[Principal, Depends(require("api_keys:read"))]
ApiKeysWrite = Annotated[Principal, Depends(require("api_keys:write"))]


# Where a request's resolved caller is kept: the rate limiter, the idempotency layer and
# the route all ask, and each asking would otherwise verify the token again.
_CALLER = "keel.caller"


async def resolve_caller(scope: Scope) -> Principal | None:
    """Who a request acts for: None without credentials; raises (401) for credentials
    that do not authenticate. Resolved once per request, then read from the scope."""
    state = scope.setdefault("state", {})
    if _CALLER in state:
        known: Principal | KeelError | None = state[_CALLER]
        if isinstance(known, KeelError):
            raise known
        return known
    api_key = authorization = None
    # The first of each header, as FastAPI's security schemes read them.
    for name, value in scope["headers"]:
        if name == b"x-api-key" and api_key is None:
            api_key = value.decode("latin-1")
        elif name == b"authorization" and authorization is None:
            authorization = value.decode("latin-1")
    scheme, bearer = get_authorization_scheme_param(authorization)
    try:
        principal = await _principal(
            scope["app"].state.resources, api_key, bearer if scheme.lower() == "bearer" else None
        )
    except KeelError as exc:
        state[_CALLER] = exc
        raise
    state[_CALLER] = principal
    return principal


async def authenticate_again(scope: Scope) -> Principal | None:
    """The caller of a long-lived request (an events stream) as of now: their
    credentials checked again (a revoked session, an expired token, a deleted key, a
    deactivated user or a changed role show), None when they no longer authenticate."""
    scope.setdefault("state", {}).pop(_CALLER, None)
    return await caller_principal(scope)


async def caller_principal(scope: Scope) -> Principal | None:
    """:func:`resolve_caller` for middleware, before routing: None also for credentials
    that do not authenticate (the route then answers 401 itself)."""
    try:
        return await resolve_caller(scope)
    except KeelError:
        return None


async def identify_caller(scope: Scope) -> str | None:
    """Who a request acts for, as the key that scopes its ``Idempotency-Key``.

    A session user is their user id, not the session: a retry sent with a refreshed
    access token is the same caller. An API key is itself: a key with narrower scopes
    must not replay a response made for its owner's session or another key (such as a
    new key's secret).
    """
    principal = await caller_principal(scope)
    if principal is None:
        return None
    return f"key:{principal.api_key_id}" if principal.api_key_id is not None else str(principal.user_id)
