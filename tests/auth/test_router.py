"""Registration, login, lockout, refresh rotation, logout, password change, MFA."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import httpx
import pyotp
import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI
from sqlalchemy import select, update

from keel.audit.models import AuditLog
from keel.auth.models import AuthSession, LoginThrottle, RefreshToken
from keel.auth.service import throttle_key
from keel.platform.db.base import utcnow
from keel.platform.resources import Resources
from keel.platform.security.passwords import Passwords
from keel.users.models import User
from tests.conftest import ClientFactory
from tests.identity import PASSWORD, Accounts, TestUser, unique_email

AUTH = "/api/v2/auth"


def resources_of(app: FastAPI) -> Resources:
    resources: Resources = app.state.resources
    return resources


async def audit_actions(app: FastAPI, user_id: uuid.UUID) -> list[str]:
    async with resources_of(app).db.sessionmaker() as session:
        rows = await session.execute(
            select(AuditLog.action).where(AuditLog.user_id == user_id).order_by(AuditLog.occurred_at)
        )
        return list(rows.scalars())


async def login(client: httpx.AsyncClient, email: str, password: str, **extra: str) -> httpx.Response:
    return await client.post(f"{AUTH}/login", json={"email": email, "password": password, **extra})


def error_code(response: httpx.Response) -> str:
    code: str = response.json()["errors"][0]["code"]
    return code


# --- Registration -----------------------------------------------------------------


async def test_register_creates_a_user_account(client: httpx.AsyncClient, app: FastAPI) -> None:
    email = unique_email()
    response = await client.post(
        f"{AUTH}/register", json={"email": email.upper(), "password": PASSWORD, "full_name": "Ada"}
    )
    assert response.status_code == 201
    data = response.json()["data"]
    assert data["email"] == email  # lower-cased
    assert data["role"] == "user"
    assert data["plan"] == "free"
    assert "password" not in str(data)
    assert "hash" not in str(data)
    assert response.headers["location"] == "/api/v2/auth/me"
    assert "user.registered" in await audit_actions(app, uuid.UUID(data["id"]))


async def test_taken_email_is_a_conflict_whatever_its_case(
    client: httpx.AsyncClient, accounts: Accounts
) -> None:
    user = await accounts.create(login=False)
    body = {"email": user.email.upper(), "password": PASSWORD, "full_name": "Again"}
    response = await client.post(f"{AUTH}/register", json=body)
    assert response.status_code == 409
    assert response.json()["errors"][0]["field"] == "email"


@pytest.mark.parametrize(
    "password",
    [
        "short-pw",
        "a" * 129,
        "aaaaaaaaaaaa",
        "abababababab",
        "123456789012",
        "abcdefghijkl",
        "1q2w3e4r5t6y7u8i",
    ],
)
async def test_weak_passwords_are_refused(client: httpx.AsyncClient, password: str) -> None:
    response = await client.post(
        f"{AUTH}/register", json={"email": unique_email(), "password": password, "full_name": "W"}
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "password"


async def test_password_equal_to_the_email_is_refused(client: httpx.AsyncClient) -> None:
    email = unique_email()
    for password in (email, email.split("@")[0]):
        if len(password) < 12:
            continue
        response = await client.post(
            f"{AUTH}/register", json={"email": email, "password": password, "full_name": "E"}
        )
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "password"


@pytest.mark.parametrize(
    "body",
    [
        {"email": "not-an-email", "password": PASSWORD, "full_name": "X"},
        {"email": unique_email(), "password": PASSWORD, "full_name": ""},
        {"email": unique_email(), "password": PASSWORD, "full_name": "x" * 101},
        {"email": unique_email(), "password": PASSWORD, "full_name": "X", "role": "admin"},
    ],
)
async def test_invalid_registration_is_refused(client: httpx.AsyncClient, body: dict[str, str]) -> None:
    assert (await client.post(f"{AUTH}/register", json=body)).status_code == 422


async def test_admin_email_domain_makes_admins(client_with: ClientFactory) -> None:
    async with client_with(admin_email_domains=["corp.example"]) as client:
        response = await client.post(
            f"{AUTH}/register",
            json={
                "email": f"boss-{uuid.uuid4().hex[:6]}@Corp.Example",
                "password": PASSWORD,
                "full_name": "B",
            },
        )
    assert response.json()["data"]["role"] == "admin"


async def test_stored_hash_is_argon2id_with_owasp_parameters(app: FastAPI, accounts: Accounts) -> None:
    user = await accounts.create(login=False)
    async with resources_of(app).db.sessionmaker() as session:
        stored = (await session.execute(select(User.password_hash).where(User.id == user.id))).scalar_one()
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")


# --- Login --------------------------------------------------------------------------


async def test_login_returns_a_token_pair_that_is_not_cached(
    client: httpx.AsyncClient, accounts: Accounts
) -> None:
    user = await accounts.create(login=False)
    response = await login(client, user.email.upper(), user.password)
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["token_type"] == "bearer"
    assert data["expires_in"] == 15 * 60
    assert response.headers["cache-control"] == "no-store"


async def test_unknown_email_and_wrong_password_look_the_same(
    client: httpx.AsyncClient, accounts: Accounts
) -> None:
    user = await accounts.create(login=False)
    unknown = await login(client, unique_email("ghost"), "Whatever-Password-1")
    wrong = await login(client, user.email, "Wrong-Password-123")
    assert unknown.status_code == wrong.status_code == 401
    for response in (unknown, wrong):
        assert response.json()["errors"] == [
            {
                "code": "INVALID_CREDENTIALS",
                "message": "The e-mail address or password is incorrect.",
                "field": None,
                "severity": "medium",
            }
        ]


async def test_unknown_email_costs_one_full_password_verification(
    client: httpx.AsyncClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    passwords = resources_of(app).security.passwords
    verified: list[str] = []

    class SpyHasher:
        def __init__(self, inner: PasswordHasher) -> None:
            self.inner = inner

        def verify(self, password_hash: str, password: str) -> bool:
            verified.append(password_hash)
            return self.inner.verify(password_hash, password)

    monkeypatch.setattr(passwords, "_hasher", SpyHasher(passwords._hasher))
    await login(client, unique_email("ghost"), "Whatever-Password-1")
    assert len(verified) == 1
    assert verified[0].startswith("$argon2id$v=19$m=19456,t=2,p=1$")


async def test_inactive_account_cannot_log_in(
    client: httpx.AsyncClient, accounts: Accounts, app: FastAPI
) -> None:
    user = await accounts.create(login=False)
    async with resources_of(app).db.sessionmaker() as session:
        await session.execute(update(User).where(User.id == user.id).values(is_active=False))
        await session.commit()
    response = await login(client, user.email, user.password)
    assert response.status_code == 401
    assert error_code(response) == "INVALID_CREDENTIALS"


async def test_login_rehashes_when_parameters_change(
    client: httpx.AsyncClient, accounts: Accounts, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = await accounts.create(login=False)
    stronger = Passwords(memory_kib=19_456, time_cost=3, parallelism=1)
    monkeypatch.setattr(resources_of(app).security, "passwords", stronger)
    assert (await login(client, user.email, user.password)).status_code == 200
    async with resources_of(app).db.sessionmaker() as session:
        stored = (await session.execute(select(User.password_hash).where(User.id == user.id))).scalar_one()
    assert stored.startswith("$argon2id$v=19$m=19456,t=3,p=1$")


async def test_oauth2_form_token_endpoint_answers_the_bare_token(
    client: httpx.AsyncClient, accounts: Accounts
) -> None:
    user = await accounts.create(login=False)
    response = await client.post(f"{AUTH}/token", data={"username": user.email, "password": user.password})
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert "success" not in body
    me = await client.get(f"{AUTH}/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200


# --- Lockout ---------------------------------------------------------------------------


async def fail_five_times(client: httpx.AsyncClient, email: str, **headers: str) -> None:
    for attempt in range(5):
        response = await client.post(
            f"{AUTH}/login",
            json={"email": email, "password": f"Wrong-Password-{attempt}"},
            headers={"X-Forwarded-For": f"198.51.100.{attempt}"} if headers.get("rotate") else {},
        )
        assert error_code(response) == "INVALID_CREDENTIALS"


async def test_five_failures_lock_the_account_even_for_the_right_password(
    client: httpx.AsyncClient, accounts: Accounts, app: FastAPI
) -> None:
    user = await accounts.create(login=False)
    await fail_five_times(client, user.email)
    response = await login(client, user.email, user.password)
    assert response.status_code == 429
    assert error_code(response) == "ACCOUNT_LOCKED"
    assert 0 < int(response.headers["retry-after"]) <= 15 * 60 + 1
    actions = await audit_actions(app, user.id)
    assert actions.count("auth.login.failed") == 5
    assert "auth.account.locked" in actions


async def test_lockout_holds_whatever_the_source_address(
    client_with: ClientFactory, accounts: Accounts
) -> None:
    user = await accounts.create(login=False)
    async with client_with(trusted_proxies=["127.0.0.0/8"]) as client:
        await fail_five_times(client, user.email, rotate="yes")
        response = await client.post(
            f"{AUTH}/login",
            json={"email": user.email, "password": user.password},
            headers={"X-Forwarded-For": "203.0.113.99"},
        )
    assert error_code(response) == "ACCOUNT_LOCKED"


async def test_unknown_email_locks_too_so_lockout_reveals_nothing(client: httpx.AsyncClient) -> None:
    email = unique_email("ghost")
    await fail_five_times(client, email)
    assert error_code(await login(client, email, "Whatever-Password-1")) == "ACCOUNT_LOCKED"


async def test_lock_ends_with_its_window(client: httpx.AsyncClient, accounts: Accounts, app: FastAPI) -> None:
    user = await accounts.create(login=False)
    await fail_five_times(client, user.email)
    past = utcnow() - timedelta(minutes=16)
    async with resources_of(app).db.sessionmaker() as session:
        await session.execute(
            update(LoginThrottle)
            .where(LoginThrottle.key == throttle_key(user.email))
            .values(window_started_at=past, locked_until=past + timedelta(minutes=15))
        )
        await session.commit()
    assert (await login(client, user.email, user.password)).status_code == 200


async def test_success_resets_the_failure_count(client: httpx.AsyncClient, accounts: Accounts) -> None:
    user = await accounts.create(login=False)
    for _ in range(4):
        await login(client, user.email, "Wrong-Password-123")
    assert (await login(client, user.email, user.password)).status_code == 200
    for _ in range(4):
        await login(client, user.email, "Wrong-Password-123")
    assert (await login(client, user.email, user.password)).status_code == 200


# --- Refresh --------------------------------------------------------------------------


async def refresh(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post(f"{AUTH}/refresh", json={"refresh_token": token})


async def test_refresh_rotates_the_token(client: httpx.AsyncClient, accounts: Accounts) -> None:
    user = await accounts.create()
    response = await refresh(client, user.refresh_token)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    new = response.json()["data"]
    assert new["refresh_token"] != user.refresh_token
    assert (
        await client.get(f"{AUTH}/me", headers={"Authorization": f"Bearer {new['access_token']}"})
    ).status_code == 200
    assert (await refresh(client, new["refresh_token"])).status_code == 200


async def test_reusing_a_rotated_token_revokes_the_family(
    client: httpx.AsyncClient, accounts: Accounts, app: FastAPI
) -> None:
    user = await accounts.create()
    rotated = (await refresh(client, user.refresh_token)).json()["data"]
    reuse = await refresh(client, user.refresh_token)
    assert reuse.status_code == 401
    assert error_code(reuse) == "INVALID_TOKEN"
    # The legitimate holder's newest tokens die with the family.
    assert (await refresh(client, rotated["refresh_token"])).status_code == 401
    me = await client.get(f"{AUTH}/me", headers={"Authorization": f"Bearer {rotated['access_token']}"})
    assert me.status_code == 401
    assert "auth.refresh_token.reused" in await audit_actions(app, user.id)


async def test_concurrent_refreshes_with_one_token_succeed_exactly_once(
    client: httpx.AsyncClient, accounts: Accounts
) -> None:
    user = await accounts.create()
    responses = await asyncio.gather(*(refresh(client, user.refresh_token) for _ in range(20)))
    statuses = sorted(response.status_code for response in responses)
    assert statuses.count(200) == 1, statuses
    assert statuses.count(401) == 19, statuses


async def test_expired_refresh_token_is_refused(
    client: httpx.AsyncClient, accounts: Accounts, app: FastAPI
) -> None:
    user = await accounts.create()
    async with resources_of(app).db.sessionmaker() as session:
        sessions = select(AuthSession.id).where(AuthSession.user_id == user.id)
        await session.execute(
            update(RefreshToken).where(RefreshToken.session_id.in_(sessions)).values(expires_at=utcnow())
        )
        await session.commit()
    assert (await refresh(client, user.refresh_token)).status_code == 401


async def test_unknown_refresh_token_is_refused(client: httpx.AsyncClient) -> None:
    response = await refresh(client, "x" * 43)
    assert response.status_code == 401


# --- Logout and password change ------------------------------------------------------


async def test_logout_kills_the_access_and_refresh_tokens_at_once(
    client: httpx.AsyncClient, accounts: Accounts, app: FastAPI
) -> None:
    user = await accounts.create()
    assert (await client.get(f"{AUTH}/me", headers=user.headers)).status_code == 200  # cached as live
    assert (await client.post(f"{AUTH}/logout", headers=user.headers)).status_code == 204
    assert (await client.get(f"{AUTH}/me", headers=user.headers)).status_code == 401
    assert (await refresh(client, user.refresh_token)).status_code == 401
    assert "auth.logout" in await audit_actions(app, user.id)


async def test_logout_leaves_other_sessions_alone(client: httpx.AsyncClient, accounts: Accounts) -> None:
    laptop = await accounts.create()
    phone = TestUser(id=laptop.id, email=laptop.email, password=laptop.password)
    await accounts.login(phone)
    await client.post(f"{AUTH}/logout", headers=laptop.headers)
    assert (await client.get(f"{AUTH}/me", headers=phone.headers)).status_code == 200


async def test_password_change_ends_other_sessions_within_a_second(
    client: httpx.AsyncClient, accounts: Accounts, app: FastAPI
) -> None:
    current = await accounts.create()
    other = TestUser(id=current.id, email=current.email, password=current.password)
    await accounts.login(other)
    assert (await client.get(f"{AUTH}/me", headers=other.headers)).status_code == 200
    new_password = "Another-Long-Passphrase-7"
    response = await client.post(
        f"{AUTH}/password",
        headers=current.headers,
        json={"current_password": current.password, "new_password": new_password},
    )
    assert response.status_code == 204
    await asyncio.sleep(resources_of(app).settings.session_cache_ms / 1000)
    assert (await client.get(f"{AUTH}/me", headers=other.headers)).status_code == 401
    assert (await refresh(client, other.refresh_token)).status_code == 401
    assert (await client.get(f"{AUTH}/me", headers=current.headers)).status_code == 200
    assert (await login(client, current.email, current.password)).status_code == 401
    assert (await login(client, current.email, new_password)).status_code == 200
    assert "auth.password.changed" in await audit_actions(app, current.id)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            {"current_password": "Wrong-Password-123", "new_password": "Another-Long-Passphrase-7"},
            "current_password",
        ),
        ({"current_password": PASSWORD, "new_password": "123456789012"}, "new_password"),
    ],
)
async def test_password_change_needs_the_current_password_and_a_good_new_one(
    client: httpx.AsyncClient, accounts: Accounts, body: dict[str, str], field: str
) -> None:
    user = await accounts.create()
    response = await client.post(f"{AUTH}/password", headers=user.headers, json=body)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == field


# --- Profile -------------------------------------------------------------------------


async def test_profile_update_changes_the_name(client: httpx.AsyncClient, accounts: Accounts) -> None:
    user = await accounts.create()
    response = await client.patch("/api/v2/users/me", headers=user.headers, json={"full_name": "  New Name "})
    assert response.status_code == 200
    assert response.json()["data"]["full_name"] == "New Name"


@pytest.mark.parametrize(
    "field_value",
    [("role", "admin"), ("plan", "enterprise"), ("is_active", True), ("email", "x@example.com")],
)
async def test_profile_update_refuses_privileged_fields(
    client: httpx.AsyncClient, accounts: Accounts, field_value: tuple[str, object]
) -> None:
    user = await accounts.create()
    field, value = field_value
    response = await client.patch("/api/v2/users/me", headers=user.headers, json={field: value})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == field
    me = (await client.get(f"{AUTH}/me", headers=user.headers)).json()["data"]
    assert me["role"] == "user"
    assert me["plan"] == "free"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v2/auth/me"),
        ("POST", "/api/v2/auth/logout"),
        ("POST", "/api/v2/auth/password"),
        ("POST", "/api/v2/auth/mfa/setup"),
        ("POST", "/api/v2/auth/mfa/enable"),
        ("POST", "/api/v2/auth/mfa/disable"),
        ("PATCH", "/api/v2/users/me"),
    ],
)
async def test_anonymous_is_refused(client: httpx.AsyncClient, method: str, path: str) -> None:
    response = await client.request(method, path, json={})
    assert response.status_code == 401


# --- MFA -----------------------------------------------------------------------------


async def enable_mfa(client: httpx.AsyncClient, user: TestUser) -> tuple[pyotp.TOTP, list[str]]:
    setup = (await client.post(f"{AUTH}/mfa/setup", headers=user.headers)).json()["data"]
    assert setup["otpauth_uri"].startswith("otpauth://totp/Keel:")
    totp = pyotp.TOTP(setup["secret"])
    response = await client.post(f"{AUTH}/mfa/enable", headers=user.headers, json={"otp": totp.now()})
    assert response.status_code == 200
    assert response.json()["data"]["mfa_enabled"] is True
    return totp, setup["recovery_codes"]


async def test_mfa_login_needs_a_code_and_accepts_each_code_once(
    client: httpx.AsyncClient, accounts: Accounts, app: FastAPI
) -> None:
    user = await accounts.create()
    totp, _ = await enable_mfa(client, user)
    missing = await login(client, user.email, user.password)
    assert missing.status_code == 401
    assert error_code(missing) == "MFA_REQUIRED"
    # The code used to enable MFA was consumed: wait for the next one is slow, so use
    # the next time step, which the server accepts within its one-step window.
    next_code = totp.at(int(totp.timecode(utcnow()) + 1) * totp.interval)
    assert (await login(client, user.email, user.password, otp=next_code)).status_code == 200
    replay = await login(client, user.email, user.password, otp=next_code)
    assert replay.status_code == 401
    assert error_code(replay) == "INVALID_CREDENTIALS"
    assert "auth.mfa.enabled" in await audit_actions(app, user.id)


async def test_mfa_recovery_code_works_once(client: httpx.AsyncClient, accounts: Accounts) -> None:
    user = await accounts.create()
    _, codes = await enable_mfa(client, user)
    assert len(codes) == 10
    assert (await login(client, user.email, user.password, otp=codes[0])).status_code == 200
    assert (await login(client, user.email, user.password, otp=codes[0])).status_code == 401


async def test_wrong_mfa_code_counts_as_a_failed_login(client: httpx.AsyncClient, accounts: Accounts) -> None:
    user = await accounts.create()
    await enable_mfa(client, user)
    for _ in range(5):
        await login(client, user.email, user.password, otp="000000")
    assert error_code(await login(client, user.email, user.password, otp="000000")) == "ACCOUNT_LOCKED"


async def test_mfa_disable_needs_password_and_code(
    client: httpx.AsyncClient, accounts: Accounts, app: FastAPI
) -> None:
    user = await accounts.create()
    _, codes = await enable_mfa(client, user)
    wrong = await client.post(
        f"{AUTH}/mfa/disable", headers=user.headers, json={"password": "Wrong-Password-123", "otp": codes[0]}
    )
    assert wrong.status_code == 422
    response = await client.post(
        f"{AUTH}/mfa/disable", headers=user.headers, json={"password": user.password, "otp": codes[1]}
    )
    assert response.status_code == 200
    assert response.json()["data"]["mfa_enabled"] is False
    assert (await login(client, user.email, user.password)).status_code == 200
    assert "auth.mfa.disabled" in await audit_actions(app, user.id)


async def test_mfa_secret_is_encrypted_at_rest(
    client: httpx.AsyncClient, accounts: Accounts, app: FastAPI
) -> None:
    user = await accounts.create()
    secret = (await client.post(f"{AUTH}/mfa/setup", headers=user.headers)).json()["data"]["secret"]
    async with resources_of(app).db.sessionmaker() as session:
        stored = (await session.execute(select(User.mfa_secret).where(User.id == user.id))).scalar_one()
    assert stored is not None
    assert secret not in stored


async def test_mfa_enable_with_a_wrong_code_is_refused(client: httpx.AsyncClient, accounts: Accounts) -> None:
    user = await accounts.create()
    await client.post(f"{AUTH}/mfa/setup", headers=user.headers)
    response = await client.post(f"{AUTH}/mfa/enable", headers=user.headers, json={"otp": "123456"})
    assert response.status_code == 422
    assert (await login(client, user.email, user.password)).status_code == 200  # still off


# --- Cost of the revocation check -------------------------------------------------------


async def test_a_cached_session_costs_no_query(
    client: httpx.AsyncClient, accounts: Accounts, app: FastAPI
) -> None:
    """The session check is a cache lookup: once warm, /auth/me runs only its own query."""
    from sqlalchemy import event

    user = await accounts.create()
    assert (await client.get(f"{AUTH}/me", headers=user.headers)).status_code == 200  # warms the cache
    statements: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement)

    engine = resources_of(app).db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        assert (await client.get(f"{AUTH}/me", headers=user.headers)).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", count)
    selects = [statement for statement in statements if statement.lstrip().upper().startswith("SELECT")]
    assert len(selects) == 1, statements
    assert "auth_sessions" not in selects[0]
