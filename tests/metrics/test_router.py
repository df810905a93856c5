"""Prometheus exposition: route templates as labels, optional token."""

from __future__ import annotations

import re

import httpx

from tests.conftest import ClientFactory


def sample(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line[len(name) :].split("}")[0]))
        if all(found.get(key) == value for key, value in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


async def test_requests_are_counted_by_route_template(client: httpx.AsyncClient) -> None:
    before = sample(
        (await client.get("/metrics")).text, "keel_http_requests_total", route="/health", status="200"
    )
    await client.get("/health")
    await client.get("/health")
    text = (await client.get("/metrics")).text
    after = sample(text, "keel_http_requests_total", method="GET", route="/health", status="200")
    assert after == (before or 0) + 2
    assert sample(text, "keel_http_request_duration_seconds_count", route="/health") is not None
    assert sample(text, "keel_http_requests_in_flight") is None  # unlabelled gauge: no braces
    assert re.search(r"^keel_http_requests_in_flight \d", text, re.MULTILINE)


async def test_unknown_paths_share_one_series(client: httpx.AsyncClient) -> None:
    for index in range(5):
        await client.get(f"/random-{index}")
    text = (await client.get("/metrics")).text
    assert "random-" not in text
    assert (sample(text, "keel_http_requests_total", route="unmatched", status="404") or 0) >= 5


async def test_metrics_are_open_without_a_token(client: httpx.AsyncClient) -> None:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")


async def test_metrics_token_is_enforced_when_configured(client_with: ClientFactory) -> None:
    async with client_with(metrics_token="m" * 8 + "-t0ken") as client:
        missing = await client.get("/metrics")
        wrong = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
        right = await client.get("/metrics", headers={"Authorization": "Bearer mmmmmmmm-t0ken"})
    assert missing.status_code == 401
    assert missing.json()["errors"][0]["code"] == "AUTHENTICATION_REQUIRED"
    assert missing.headers["www-authenticate"] == "Bearer"
    assert wrong.status_code == 401
    assert right.status_code == 200
    assert "keel_http_requests_total" in right.text


async def test_made_up_methods_share_one_series(client: httpx.AsyncClient) -> None:
    for index in range(4):
        await client.request(f"BREW{index}", "/health")
    text = (await client.get("/metrics")).text
    assert "BREW" not in text
    assert (sample(text, "keel_http_requests_total", method="OTHER", route="/health") or 0) >= 4


async def test_recording_can_be_switched_off(client_with: ClientFactory) -> None:
    async with client_with(request_metrics=False) as client:
        for _ in range(3):
            assert (await client.get("/health")).status_code == 200
        text = (await client.get("/metrics")).text
    assert sample(text, "keel_http_requests_total", route="/health") is None
