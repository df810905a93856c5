"""A webhook URL is looked up before the request's transaction begins: a slow name
server never holds the database (on SQLite, its single write lock)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from keel.platform.outbound import ssrf
from tests.catalog import create_product
from tests.identity import Accounts


async def test_a_slow_lookup_does_not_hold_up_other_writes(
    client: httpx.AsyncClient, accounts: Accounts, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = await accounts.create()
    looking_up = asyncio.Event()
    release = asyncio.Event()

    async def slow_lookup(host: str) -> list[str]:
        looking_up.set()
        await release.wait()
        return ["93.184.215.14"]

    monkeypatch.setattr(ssrf, "lookup", slow_lookup)
    body = {"name": "Slow", "url": "https://slow.example/hook", "events": ["*"]}
    creating = asyncio.create_task(client.post("/api/v2/webhooks", json=body, headers=owner.headers))
    await asyncio.wait_for(looking_up.wait(), 5)
    # While the lookup hangs, another write goes through: no lock is held.
    product = await asyncio.wait_for(create_product(client, owner), 3)
    assert product["name"] == "Widget"
    release.set()
    response = await creating
    assert response.status_code == 201, response.text


async def test_anonymous_callers_cause_no_lookup(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    looked_up: list[str] = []

    async def recording_lookup(host: str) -> list[str]:
        looked_up.append(host)
        return ["93.184.215.14"]

    monkeypatch.setattr(ssrf, "lookup", recording_lookup)
    body = {"name": "Probe", "url": "https://probe.example/hook", "events": ["*"]}
    response = await client.post("/api/v2/webhooks", json=body)
    assert response.status_code == 401
    assert looked_up == []
