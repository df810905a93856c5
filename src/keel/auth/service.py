"""Registration, login, token refresh, logout and password change."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from keel.audit import service as audit
from keel.audit.service import RequestMeta
from keel.auth import mfa, repository
from keel.auth.errors import AccountLocked, InvalidCredentials, InvalidToken, MfaRequired
from keel.auth.models import AuthSession, RefreshToken
from keel.auth.schemas import Login, MfaDisable, PasswordChange, Register, TokenPair
from keel.platform.db import after_commit
from keel.platform.db.base import utcnow
from keel.platform.http.errors import Conflict, ValidationFailed
from keel.platform.resources import Resources
from keel.platform.security.passwords import password_problem
from keel.platform.security.principal import Principal
from keel.platform.security.tokens import new_secret, sha256_hex
from keel.users import service as users
from keel.users.models import Role, User


async def register(session: AsyncSession, resources: Resources, data: Register, meta: RequestMeta) -> User:
    settings = resources.settings
    email = users.normalize_email(data.email)
    domain = email.rsplit("@", 1)[-1]
    role = Role.ADMIN if domain in settings.admin_email_domains else Role.USER
    user = await users.create(
        session,
        resources.security.passwords,
        email=email,
        password=data.password,
        full_name=data.full_name,
        role=role,
    )
    audit.record(
        session,
        meta,
        action="user.registered",
        actor_type="user",
        user_id=user.id,
        resource_type="user",
        resource_id=user.id,
        detail={"role": role.value},
    )
    return user


# Audit actions that other domains count (admin stats).
LOGIN_SUCCEEDED = "auth.login.succeeded"
LOGIN_FAILED = "auth.login.failed"


def throttle_key(email: str) -> str:
    return sha256_hex(f"login:{email}")


async def login(session: AsyncSession, resources: Resources, data: Login, meta: RequestMeta) -> TokenPair:
    security = resources.security
    email = users.normalize_email(data.email)
    key = throttle_key(email)
    now = utcnow()

    locked_until = await repository.throttle_locked_until(session, key, now)
    if locked_until is not None:
        # The same work as a real attempt, so a locked account is not faster to probe.
        await security.passwords.verify(None, data.password)
        audit.record(session, meta, action="auth.login.locked", outcome="failure", detail={"email": email})
        raise AccountLocked(headers={"Retry-After": str(_seconds_until(locked_until, now))})

    user = await users.get_by_email(session, email)
    password_ok = await security.passwords.verify(user.password_hash if user else None, data.password)
    if user is None or not password_ok or not user.is_active:
        await _failed(session, resources, meta, key=key, email=email, user=user, now=now, reason="password")
        raise InvalidCredentials()

    if user.mfa_enabled:
        if data.otp is None:
            audit.record(session, meta, action="auth.login.mfa_required", outcome="failure", user_id=user.id)
            raise MfaRequired()
        if not await mfa.verify(session, security.secret_box, user, data.otp, now):
            await _failed(session, resources, meta, key=key, email=email, user=user, now=now, reason="otp")
            raise InvalidCredentials("The one-time code is invalid or was already used.")

    await repository.clear_throttle(session, key)
    if security.passwords.needs_rehash(user.password_hash):
        user.password_hash = await security.passwords.hash(data.password)
    user.last_login_at = now
    pair = await _open_session(session, resources, user, meta, now)
    audit.record(session, meta, action=LOGIN_SUCCEEDED, actor_type="user", user_id=user.id)
    return pair


async def _failed(
    session: AsyncSession,
    resources: Resources,
    meta: RequestMeta,
    *,
    key: str,
    email: str,
    user: User | None,
    now: datetime,
    reason: str,
) -> None:
    settings = resources.settings
    locked_until = await repository.record_failure(
        session,
        key,
        now,
        threshold=settings.lockout_threshold,
        window=timedelta(minutes=settings.lockout_window_minutes),
    )
    user_id = user.id if user else None
    audit.record(
        session,
        meta,
        action=LOGIN_FAILED,
        outcome="failure",
        user_id=user_id,
        detail={"email": email, "reason": reason},
    )
    if locked_until is not None:
        audit.record(
            session,
            meta,
            action="auth.account.locked",
            outcome="failure",
            actor_type="system",
            user_id=user_id,
            detail={"email": email, "until": locked_until.isoformat()},
        )


def _seconds_until(moment: datetime, now: datetime) -> int:
    return max(1, int((moment - now).total_seconds()) + 1)


async def _open_session(
    session: AsyncSession, resources: Resources, user: User, meta: RequestMeta, now: datetime
) -> TokenPair:
    settings = resources.settings
    auth_session = AuthSession(
        user_id=user.id,
        expires_at=now + timedelta(days=settings.refresh_token_days),
        ip=meta.ip,
        user_agent=meta.user_agent,
    )
    session.add(auth_session)
    await session.flush()
    return await _issue(session, resources, user.id, auth_session.id, auth_session.expires_at)


async def _issue(
    session: AsyncSession,
    resources: Resources,
    user_id: uuid.UUID,
    session_id: uuid.UUID,
    expires_at: datetime,
) -> TokenPair:
    refresh = new_secret()
    session.add(RefreshToken(session_id=session_id, token_hash=sha256_hex(refresh), expires_at=expires_at))
    await session.flush()
    tokens = resources.security.access_tokens
    return TokenPair(
        access_token=tokens.issue(user_id, session_id),
        refresh_token=refresh,
        expires_in=tokens.ttl_seconds,
    )


async def refresh(session: AsyncSession, resources: Resources, token: str, meta: RequestMeta) -> TokenPair:
    """Rotate a refresh token. Presenting one that was already rotated revokes the family."""
    now = utcnow()
    token_hash = sha256_hex(token)
    session_id = await repository.use_refresh_token(session, token_hash, now)
    if session_id is None:
        known = await repository.refresh_token_session(session, token_hash)
        if known is not None and known[1]:
            family, _ = known
            await revoke(session, resources, reason="refresh_reuse", now=now, session_id=family)
            audit.record(
                session,
                meta,
                action="auth.refresh_token.reused",
                outcome="failure",
                actor_type="anonymous",
                user_id=await repository.session_user(session, family),
                resource_type="session",
                resource_id=family,
            )
        raise InvalidToken("The refresh token is invalid, expired or already used.")
    identity = await repository.identity_of_session(session, session_id, now)
    if identity is None:
        raise InvalidToken("The session has ended.")
    auth_session = await session.get_one(AuthSession, session_id)
    return await _issue(session, resources, identity[0], session_id, auth_session.expires_at)


async def revoke(
    session: AsyncSession,
    resources: Resources,
    *,
    reason: str,
    now: datetime | None = None,
    session_id: uuid.UUID | None = None,
    user_id: uuid.UUID | None = None,
    keep: uuid.UUID | None = None,
) -> list[uuid.UUID]:
    """Revoke sessions in the database; this process forgets them as soon as that commits."""
    revoked = await repository.revoke_sessions(
        session, reason=reason, now=now or utcnow(), session_id=session_id, user_id=user_id, keep=keep
    )
    cache = resources.security.sessions

    def forget() -> None:
        for sid in revoked:
            cache.evict(sid)

    after_commit(session, forget)
    return revoked


async def logout(
    session: AsyncSession, resources: Resources, principal: Principal, meta: RequestMeta
) -> None:
    if principal.session_id is None:
        raise InvalidToken("API keys have no session to log out of; revoke the key instead.")
    await revoke(session, resources, reason="logout", session_id=principal.session_id)
    audit.record(
        session,
        meta,
        action="auth.logout",
        actor=principal,
        resource_type="session",
        resource_id=principal.session_id,
    )


async def change_password(
    session: AsyncSession, resources: Resources, principal: Principal, data: PasswordChange, meta: RequestMeta
) -> None:
    """Change the password and end every other session of the account."""
    passwords = resources.security.passwords
    user = await users.get(session, principal.user_id)
    if not await passwords.verify(user.password_hash, data.current_password):
        raise ValidationFailed("The current password is incorrect.", field="current_password")
    problem = password_problem(data.new_password, user.email)
    if problem is not None:
        raise ValidationFailed(problem, field="new_password")
    user.password_hash = await passwords.hash(data.new_password)
    revoked = await revoke(
        session, resources, reason="password_change", user_id=user.id, keep=principal.session_id
    )
    audit.record(
        session,
        meta,
        action="auth.password.changed",
        actor=principal,
        resource_type="user",
        resource_id=user.id,
        detail={"sessions_revoked": len(revoked)},
    )


async def mfa_setup(
    session: AsyncSession, resources: Resources, principal: Principal, meta: RequestMeta
) -> tuple[str, str, list[str]]:
    """Start (or restart) MFA set-up: a new secret and recovery codes; not yet enforced."""
    user = await users.get(session, principal.user_id)
    if user.mfa_enabled:
        raise Conflict("MFA is already enabled; disable it first to set it up again.")
    secret = mfa.new_secret()
    user.mfa_secret = mfa.seal(resources.security.secret_box, user, secret)
    user.mfa_last_step = None
    codes = await mfa.new_recovery_codes(session, user)
    audit.record(
        session, meta, action="auth.mfa.setup", actor=principal, resource_type="user", resource_id=user.id
    )
    return secret, mfa.provisioning_uri(secret, user.email), codes


async def mfa_enable(
    session: AsyncSession, resources: Resources, principal: Principal, otp: str, meta: RequestMeta
) -> User:
    user = await users.get(session, principal.user_id)
    if user.mfa_enabled:
        raise Conflict("MFA is already enabled.")
    secret = mfa.unseal(resources.security.secret_box, user)
    if secret is None:
        raise Conflict("Call /auth/mfa/setup first.")
    if not mfa.accept_totp(user, secret, otp):
        raise ValidationFailed("The code does not match; check the authenticator's clock.", field="otp")
    user.mfa_enabled = True
    audit.record(
        session, meta, action="auth.mfa.enabled", actor=principal, resource_type="user", resource_id=user.id
    )
    return user


async def mfa_disable(
    session: AsyncSession, resources: Resources, principal: Principal, data: MfaDisable, meta: RequestMeta
) -> User:
    user = await users.get(session, principal.user_id)
    if not user.mfa_enabled:
        raise Conflict("MFA is not enabled.")
    password_ok = await resources.security.passwords.verify(user.password_hash, data.password)
    if not password_ok or not await mfa.verify(
        session, resources.security.secret_box, user, data.otp, utcnow()
    ):
        raise ValidationFailed("The password or the one-time code is incorrect.", field="otp")
    user.mfa_enabled = False
    user.mfa_secret = None
    user.mfa_last_step = None
    await mfa.delete_recovery_codes(session, user)
    audit.record(
        session, meta, action="auth.mfa.disabled", actor=principal, resource_type="user", resource_id=user.id
    )
    return user
