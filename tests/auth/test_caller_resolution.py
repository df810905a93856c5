"""A request's caller is resolved once, however many layers ask (limiter, idempotency, route)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from keel.platform.resources import Resources
from tests.identity import Accounts


@pytest.fixture
def decodes(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    resources: Resources = app.state.resources
    tokens = resources.security.access_tokens
    seen: list[str] = []
    decode = tokens.decode

    def counting(token: str) -> Any:
        seen.append(token)
        return decode(token)

    monkeypatch.setattr(tokens, "decode", counting)
    return seen


async def test_an_idempotent_post_verifies_its_token_once(
    client: httpx.AsyncClient, accounts: Accounts, decodes: list[str]
) -> None:
    user = await accounts.create()
    decodes.clear()
    response = await client.post(
        "/api/v2/folders", json={"name": "once"}, headers={**user.headers, "Idempotency-Key": "resolve-once"}
    )
    assert response.status_code == 201
    assert decodes == [user.access_token]


async def test_a_bad_token_is_refused_once_with_its_reason(
    client: httpx.AsyncClient, accounts: Accounts, decodes: list[str]
) -> None:
    user = await accounts.create()
    decodes.clear()
    tampered = user.access_token[:-4] + ("AAAA" if not user.access_token.endswith("AAAA") else "BBBB")
    response = await client.post(
        "/api/v2/folders",
        json={"name": "never"},
        headers={"Authorization": f"Bearer {tampered}", "Idempotency-Key": "resolve-bad"},
    )
    assert response.status_code == 401
    assert response.json()["errors"][0]["code"] == "INVALID_TOKEN"
    assert decodes == [tampered]
