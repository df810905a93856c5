"""Access-token attacks (RFC 8725): every forged or misused token is a 401."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI

from keel.platform.security.tokens import derive_key
from tests.identity import Accounts, TestUser

ME = "/api/v2/auth/me"


def key_of(app: FastAPI) -> bytes:
    return derive_key(app.state.settings.signing_key, "jwt")


def claims_for(user: TestUser, app: FastAPI, **changes: Any) -> dict[str, Any]:
    access = jwt.decode(user.access_token, key_of(app), algorithms=["HS256"], audience="keel-api")
    access.update(changes)
    return {key: value for key, value in access.items() if value is not None}


def forge(claims: dict[str, Any], key: Any = b"a-32-byte-key-that-the-server-lacks", **kwargs: Any) -> str:
    kwargs.setdefault("headers", {"typ": "at+jwt"})
    return jwt.encode(claims, key, algorithm=kwargs.pop("algorithm", "HS256"), **kwargs)


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def me_with(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.get(ME, headers={"Authorization": f"Bearer {token}"})


def assert_401(response: httpx.Response, code: str = "INVALID_TOKEN", *, challenge: bool = True) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["errors"][0]["code"] == code
    if challenge:  # header credentials get a challenge; a token in a body does not
        assert response.headers["www-authenticate"].startswith("Bearer")


async def test_genuine_token_is_accepted(client: httpx.AsyncClient, accounts: Accounts) -> None:
    user = await accounts.create()
    response = await me_with(client, user.access_token)
    assert response.status_code == 200
    assert response.json()["data"]["id"] == str(user.id)


async def test_forged_signature_is_refused(
    client: httpx.AsyncClient, accounts: Accounts, app: FastAPI
) -> None:
    user = await accounts.create()
    assert_401(await me_with(client, forge(claims_for(user, app))))


async def test_tampered_payload_is_refused(
    client: httpx.AsyncClient, accounts: Accounts, app: FastAPI
) -> None:
    victim, attacker = await accounts.create(), await accounts.create()
    header, _payload, signature = attacker.access_token.split(".")
    payload = b64(claims_for(attacker, app, sub=str(victim.id)))
    assert_401(await me_with(client, f"{header}.{payload}.{signature}"))


async def test_alg_none_is_refused(client: httpx.AsyncClient, accounts: Accounts, app: FastAPI) -> None:
    user = await accounts.create()
    unsigned = f"{b64({'alg': 'none', 'typ': 'at+jwt'})}.{b64(claims_for(user, app))}."
    assert_401(await me_with(client, unsigned))


async def test_rs256_token_is_refused_whatever_its_key(
    client: httpx.AsyncClient, accounts: Accounts, app: FastAPI
) -> None:
    user = await accounts.create()
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = forge(claims_for(user, app), private_key, algorithm="RS256")
    assert_401(await me_with(client, token))


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
async def test_hs512_with_the_right_key_is_refused(
    client: httpx.AsyncClient, accounts: Accounts, app: FastAPI
) -> None:
    user = await accounts.create()
    assert_401(await me_with(client, forge(claims_for(user, app), key_of(app), algorithm="HS512")))


async def test_expired_token_is_token_expired(
    client: httpx.AsyncClient, accounts: Accounts, app: FastAPI
) -> None:
    user = await accounts.create()
    now = int(time.time())
    token = forge(claims_for(user, app, iat=now - 3600, exp=now - 60), key_of(app))
    assert_401(await me_with(client, token), "TOKEN_EXPIRED")


async def test_a_token_accepted_before_is_refused_once_it_expires(
    client: httpx.AsyncClient, accounts: Accounts, app: FastAPI
) -> None:
    # Verified tokens are remembered by their text: expiry must still be judged per use.
    user = await accounts.create()
    expires = int(time.time()) + 2
    token = forge(claims_for(user, app, exp=expires), key_of(app))
    assert (await me_with(client, token)).status_code == 200
    await asyncio.sleep(expires - time.time() + 0.05)
    assert_401(await me_with(client, token), "TOKEN_EXPIRED")


@pytest.mark.parametrize(("claim", "value"), [("aud", "someone-else"), ("iss", "evil-issuer")])
async def test_wrong_audience_or_issuer_is_refused(
    client: httpx.AsyncClient, accounts: Accounts, app: FastAPI, claim: str, value: str
) -> None:
    user = await accounts.create()
    assert_401(await me_with(client, forge(claims_for(user, app, **{claim: value}), key_of(app))))


@pytest.mark.parametrize("claim", ["exp", "iat", "sub", "jti", "iss", "aud", "sid", "type"])
async def test_token_missing_a_claim_is_refused(
    client: httpx.AsyncClient, accounts: Accounts, app: FastAPI, claim: str
) -> None:
    user = await accounts.create()
    claims = claims_for(user, app)
    del claims[claim]
    assert_401(await me_with(client, forge(claims, key_of(app))))


async def test_token_of_another_type_is_refused(
    client: httpx.AsyncClient, accounts: Accounts, app: FastAPI
) -> None:
    user = await accounts.create()
    assert_401(await me_with(client, forge(claims_for(user, app, type="refresh"), key_of(app))))
    assert_401(await me_with(client, forge(claims_for(user, app), key_of(app), headers={"typ": "JWT"})))


async def test_session_of_another_user_is_refused(
    client: httpx.AsyncClient, accounts: Accounts, app: FastAPI
) -> None:
    alice, mallory = await accounts.create(), await accounts.create()
    alice_sid = claims_for(alice, app)["sid"]
    token = forge(claims_for(mallory, app, sid=alice_sid), key_of(app))
    assert_401(await me_with(client, token))


async def test_unknown_session_is_refused(
    client: httpx.AsyncClient, accounts: Accounts, app: FastAPI
) -> None:
    user = await accounts.create()
    assert_401(await me_with(client, forge(claims_for(user, app, sid=str(uuid.uuid4())), key_of(app))))


async def test_refresh_token_used_as_access_token_is_refused(
    client: httpx.AsyncClient, accounts: Accounts
) -> None:
    user = await accounts.create()
    assert_401(await me_with(client, user.refresh_token))


async def test_access_token_used_as_refresh_token_is_refused(
    client: httpx.AsyncClient, accounts: Accounts
) -> None:
    user = await accounts.create()
    response = await client.post("/api/v2/auth/refresh", json={"refresh_token": user.access_token})
    assert_401(response, challenge=False)


@pytest.mark.parametrize("header", ["Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "bearer x.y.z", "Token abc"])
async def test_malformed_authorization_is_refused(client: httpx.AsyncClient, header: str) -> None:
    response = await client.get(ME, headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json()["errors"][0]["code"] in {"AUTHENTICATION_REQUIRED", "INVALID_TOKEN"}


async def test_anonymous_is_authentication_required(client: httpx.AsyncClient) -> None:
    response = await client.get(ME)
    assert_401(response, "AUTHENTICATION_REQUIRED")
