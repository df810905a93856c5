"""Rate limits across real ``keel serve`` processes and a private redis-server: one shared
budget for several replicas, and a Redis outage met (and recovered from) mid-run."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
import redis

from tests.conftest import LiveServer
from tests.identity import PASSWORD, unique_email
from tests.platform.ratelimit.conftest import LiveFactory, RedisServer

pytestmark = pytest.mark.live

PRODUCTS = "/api/v2/products"
LOGIN = "/api/v2/auth/login"
REGISTER = "/api/v2/auth/register"
DEEP = "/health/deep"
RATE_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")


def codes(response: httpx.Response) -> list[str]:
    return [error["code"] for error in response.json()["errors"]]


def checks(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def log_events(server: LiveServer, name: str) -> list[dict[str, Any]]:
    return [entry for line in server.log_lines() if (entry := json.loads(line))["event"] == name]


def stored(server: RedisServer, pattern: str) -> list[bytes]:
    """Keys matching ``pattern`` on that redis-server: proof the app writes to this one."""
    with redis.Redis(port=server.port, socket_timeout=2) as connection:
        return list(connection.scan_iter(match=pattern))


def evalsha_calls(server: RedisServer) -> int:
    """Scripts run by that redis-server process since it started."""
    with redis.Redis(port=server.port, socket_timeout=2) as connection:
        stats: dict[str, Any] = connection.info("commandstats")
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


def login(client: httpx.Client) -> httpx.Response:
    # An account nobody registered: 401 when the limiter lets the attempt through.
    return client.post(LOGIN, json={"email": unique_email("login"), "password": PASSWORD})


def register(client: httpx.Client) -> httpx.Response:
    body = {"email": unique_email("register"), "password": PASSWORD, "full_name": "Outage"}
    return client.post(REGISTER, json=body)


def test_two_servers_sharing_redis_enforce_one_limit(
    start_live: LiveFactory, redis_server: RedisServer
) -> None:
    # A 10-minute window: 10 requests in it, so the budget grows back by one a minute and
    # not, as with the default minute, every 6 s (a slow machine could see one more pass).
    servers = start_live(
        replicas=2,
        redis_url=redis_server.url,
        rate_limit_anonymous_per_minute=10,
        rate_limit_period_seconds=600,
    )

    with httpx.Client(timeout=5) as client:
        started = time.monotonic()
        responses = [client.get(servers[i % 2].url + PRODUCTS) for i in range(20)]
        elapsed = time.monotonic() - started

    assert elapsed < 50, f"20 requests took {elapsed:.1f} s: the budget may have grown back meanwhile"
    assert [r.status_code for r in responses] == [401] * 10 + [429] * 10
    for response in responses[10:]:
        assert codes(response) == ["RATE_LIMITED"]
        assert int(response.headers["Retry-After"]) >= 1
    assert {r.headers["X-RateLimit-Limit"] for r in responses} == {"10"}
    # One count for both servers: each answer continues the other's.
    assert [r.headers["X-RateLimit-Remaining"] for r in responses] == [str(n) for n in range(9, -1, -1)] + [
        "0"
    ] * 10
    # Counted on the private Redis, not on the shared one the postgres backend is set up with.
    assert len(stored(redis_server, "*rl:anonymous:10:600000000:ip:127.0.0.1")) == 1


def test_redis_stopped_mid_run_then_recovers(start_live: LiveFactory, redis_server: RedisServer) -> None:
    (server,) = start_live(redis_url=redis_server.url, redis_timeout_ms=200, rate_limit_probe_seconds=0.2)
    answered: list[httpx.Response] = []

    with httpx.Client(base_url=server.url, timeout=5, event_hooks={"response": [answered.append]}) as client:
        # Redis up: limits on Redis, and health says so.
        response = client.get(PRODUCTS)
        assert response.status_code == 401
        assert all(name in response.headers for name in RATE_HEADERS)
        up = checks(client.get(DEEP))
        assert up["checks"]["ratelimit"]["status"] == "ok"
        assert up["checks"]["redis"]["status"] == "ok"

        port = redis_server.port
        redis_server.stop()

        # General routes fall back to memory: still served, still limited and labelled.
        for _ in range(5):
            response = client.get(PRODUCTS)
            assert response.status_code == 401
            assert response.headers["X-RateLimit-Limit"] == "1000000"
            assert all(name in response.headers for name in RATE_HEADERS)

        # Login and register fail closed.
        for refused in (login(client), register(client)):
            assert refused.status_code == 503, refused.text
            assert codes(refused) == ["SERVICE_UNAVAILABLE"]
            assert int(refused.headers["Retry-After"]) >= 1

        down = checks(client.get(DEEP))
        assert down["status"] == "degraded"
        assert down["checks"]["ratelimit"]["status"] == "degraded"
        assert down["checks"]["redis"]["status"] == "down"

        # The same port again: the server's client reconnects to it on its next probe.
        redis_server.start()
        assert redis_server.port == port
        deadline = time.monotonic() + 10
        while (response := login(client)).status_code == 503 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert response.status_code == 401, response.text  # unknown account: wrong credentials
        recovered = checks(client.get(DEEP))
        assert recovered["checks"]["ratelimit"]["status"] == "ok"
        assert recovered["checks"]["redis"]["status"] == "ok"
        # The restarted redis-server is the one counting (at limits this high a bucket
        # expires within a millisecond, so the proof is the script having run there).
        assert evalsha_calls(redis_server) >= 1

    # No 5xx but the fail-closed 503s of login and register.
    unexpected = [
        (r.request.method, r.request.url.path, r.status_code)
        for r in answered
        if r.status_code >= 500 and not (r.status_code == 503 and r.request.url.path in (LOGIN, REGISTER))
    ]
    assert unexpected == []

    # One outage, logged once as it began and once as it ended (the log may lag the answer).
    deadline = time.monotonic() + 5
    while not log_events(server, "ratelimit.redis.recovered") and time.monotonic() < deadline:
        time.sleep(0.05)
    unavailable = log_events(server, "ratelimit.redis.unavailable")
    recovered_events = log_events(server, "ratelimit.redis.recovered")
    assert len(unavailable) == 1
    assert len(recovered_events) == 1
    assert unavailable[0]["level"] == "warning"
    assert recovered_events[0]["outage_seconds"] > 0
