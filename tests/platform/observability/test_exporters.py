"""Optional exporters: spans reach a real OTLP endpoint and error reports a real Sentry
ingest (both local HTTP receivers); with neither configured nothing of theirs is loaded.

Sentry patches Starlette's classes for the life of the process, so the tests that
initialise it run the app in a fresh interpreter. OpenTelemetry's instrumentations are
removed again by the exporters' shutdown, so those tests run in this process.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from redis.asyncio import Redis

from keel.platform.observability.exporters import (
    FILTERED,
    MissingExtra,
    install_exporters,
    scrub_event,
    tracing_configured,
)
from tests.conftest import ClientFactory, live_env, make_settings, migrate

ROOT = Path(__file__).resolve().parents[3]
BEARER = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJzZWNyZXQtdXNlciJ9.c2lnbmF0dXJlLXNlY3JldA"
API_KEY = "keel_0123456789abcdefSECRET"
LEAKED_IN_MESSAGE = "db-token=hunter2-in-the-message"


class Receiver:
    """A local HTTP server that keeps every POST: an OTLP collector, a Sentry ingest."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, bytes]] = []
        received = self.posts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                received.append((self.path, body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def spans(self) -> list[tuple[dict[str, Any], Span]]:
        """Every span exported to /v1/traces, with its resource's attributes."""
        spans = []
        for path, body in self.posts:
            if path != "/v1/traces":
                continue
            request = ExportTraceServiceRequest.FromString(body)
            for resource_spans in request.resource_spans:
                resource = attributes(resource_spans.resource.attributes)
                spans += [
                    (resource, span)
                    for scope_spans in resource_spans.scope_spans
                    for span in scope_spans.spans
                ]
        return spans


def attributes(pairs: Iterable[KeyValue]) -> dict[str, Any]:
    values = {}
    for pair in pairs:
        kind = pair.value.WhichOneof("value")
        values[pair.key] = None if kind is None else getattr(pair.value, kind)
    return values


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


@pytest.fixture
def without_exporters(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("OTEL_", "KEEL_SENTRY_")):
            monkeypatch.delenv(name)


@pytest.fixture(scope="module")
def sqlite_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The KEEL_* environment of an app in another interpreter, on a migrated SQLite file."""
    values = {"database_url": f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('sqlite') / 'keel.db'}"}
    migrate(make_settings(**values))
    return live_env({**values, "worker_in_process": "false", "metrics_flush_seconds": 60})


def run_python(script: str, env: dict[str, str]) -> str:
    clean = {name: value for name, value in os.environ.items() if not name.startswith(("OTEL_", "KEEL_"))}
    result = subprocess.run(
        [sys.executable, "-c", script],
        env={**clean, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    # Its last line: the app logs to stdout before it.
    return result.stdout.splitlines()[-1]


def instrumented() -> dict[str, bool]:
    return {
        "httpx": hasattr(httpx.AsyncHTTPTransport.handle_async_request, "__wrapped__"),
        "redis": hasattr(Redis.execute_command, "__wrapped__"),
    }


# --- Off -------------------------------------------------------------------------------

# What installing the exporters would load. FastAPI imports the OpenTelemetry API for
# its own telemetry hook (which Keel keeps off), and redis-py imports the metrics SDK
# when it is installed, for an opt-in of its own: neither is the exporters' doing.
EXPORTER_MODULES = (
    "sentry_sdk",
    "opentelemetry.sdk.trace",
    "opentelemetry.exporter",
    "opentelemetry.instrumentation",
)
LOADED_EXPORTER_MODULES = f"""
import sys
from keel.app import create_app
from keel.settings import Settings
app = create_app(Settings(_env_file=None))
print(sorted(name for name in sys.modules if name.startswith({EXPORTER_MODULES!r})))
"""


def test_nothing_of_the_exporters_is_imported_when_neither_is_configured(sqlite_env: dict[str, str]) -> None:
    assert run_python(LOADED_EXPORTER_MODULES, sqlite_env) == "[]"


@pytest.mark.usefixtures("without_exporters")
def test_nothing_is_added_to_the_app_when_neither_is_configured() -> None:
    app = FastAPI()
    build_middleware_stack = app.build_middleware_stack
    exporters = install_exporters(app, make_settings())
    assert not exporters.active
    assert app.user_middleware == []
    assert app.build_middleware_stack == build_middleware_stack


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_SDK_DISABLED": "true"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_TRACES_EXPORTER": "none"}, False),
    ],
)
def test_tracing_follows_the_standard_variables(environ: dict[str, str], expected: bool) -> None:
    assert tracing_configured(environ) is expected


# --- Missing extras ----------------------------------------------------------------------


@pytest.mark.usefixtures("without_exporters")
def test_tracing_without_its_extra_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    # None in sys.modules is how Python spells "not installed" for an import.
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.http.trace_exporter", None)
    with pytest.raises(MissingExtra, match=r"OTEL_EXPORTER_OTLP_ENDPOINT is set.*keel\[otel\]"):
        install_exporters(FastAPI(), make_settings())


@pytest.mark.usefixtures("without_exporters")
def test_sentry_without_its_extra_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sentry_sdk", None)
    with pytest.raises(MissingExtra, match=r"KEEL_SENTRY_DSN is set.*keel\[sentry\]"):
        install_exporters(FastAPI(), make_settings(sentry_dsn="http://key@127.0.0.1:9/1"))


# --- Tracing ---------------------------------------------------------------------------


@pytest.mark.usefixtures("without_exporters")
async def test_request_spans_with_their_sql_reach_the_otlp_endpoint(
    client_with: ClientFactory, receiver: Receiver, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    async with client_with() as client:
        response = await client.get("/health/deep")
    assert response.status_code == 200
    # The lifespan's end shut the exporters down, which exported what was buffered.
    spans = receiver.spans()
    server = [span for _, span in spans if attributes(span.attributes).get("http.route") == "/health/deep"]
    assert len(server) == 1
    assert server[0].kind == Span.SPAN_KIND_SERVER
    assert {resource["service.name"] for resource, _ in spans} == {"keel"}
    children = {
        attributes(span.attributes).get("db.system") or attributes(span.attributes).get("db.system.name")
        for _, span in spans
        if span.trace_id == server[0].trace_id
    }
    assert ("sqlite" if backend == "sqlite" else "postgresql") in children
    if backend == "postgres":  # with KEEL_REDIS_URL: the readiness check pings it
        assert "redis" in children


@pytest.mark.usefixtures("without_exporters")
async def test_the_service_name_comes_from_otel_service_name(
    client_with: ClientFactory, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    monkeypatch.setenv("OTEL_SERVICE_NAME", "keel-eu")
    async with client_with() as client:
        await client.get("/health")
    assert {resource["service.name"] for resource, _ in receiver.spans()} == {"keel-eu"}


@pytest.mark.usefixtures("without_exporters")
async def test_shutdown_removes_every_instrumentation(
    client_with: ClientFactory, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    async with client_with():
        assert instrumented() == {"httpx": True, "redis": True}
    assert instrumented() == {"httpx": False, "redis": False}


# --- Error reporting -------------------------------------------------------------------

REPORTED_CRASH = f"""
import asyncio
import httpx
from asgi_lifespan import LifespanManager
from keel.app import create_app
from keel.settings import Settings

async def main() -> None:
    app = create_app(Settings(_env_file=None))

    async def crash(payload: dict[str, str]) -> None:
        authorization = "Bearer {BEARER}"
        raise RuntimeError("{LEAKED_IN_MESSAGE}")

    app.add_api_route("/crash", crash, methods=["POST"])
    transport = httpx.ASGITransport(app=app)
    headers = {{"Authorization": "Bearer {BEARER}", "X-API-Key": "{API_KEY}", "Cookie": "sid={API_KEY}"}}
    async with LifespanManager(app), httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.post(
            "/crash?access_token={BEARER}",
            json={{"name": "ok", "password": "hunter2-password"}},
            headers=headers,
        )
    print(response.json()["errors"][0]["code"])

asyncio.run(main())
"""


def sentry_events(receiver: Receiver) -> list[dict[str, Any]]:
    events = []
    for path, body in receiver.posts:
        assert path == "/api/1/envelope/"
        lines = body.decode().splitlines()
        # An envelope: its header, then (item header, item payload) pairs.
        for header, payload in zip(lines[1::2], lines[2::2], strict=False):
            if json.loads(header)["type"] == "event":
                events.append(json.loads(payload))
    return events


def test_an_unhandled_error_is_reported_to_sentry_without_credentials(
    receiver: Receiver, sqlite_env: dict[str, str]
) -> None:
    dsn = f"http://publickey@{receiver.url.removeprefix('http://')}/1"
    output = run_python(REPORTED_CRASH, {**sqlite_env, "KEEL_SENTRY_DSN": dsn})
    assert output == "INTERNAL_ERROR"
    [event] = sentry_events(receiver)
    assert event["exception"]["values"][-1]["type"] == "RuntimeError"
    assert event["environment"] == "test"
    assert event["request"]["url"].endswith("/crash")
    raw = b"".join(body for _, body in receiver.posts).decode()
    for secret in (BEARER, API_KEY, "hunter2"):
        assert secret not in raw


def test_scrubbing_filters_secret_keys_and_credentials_in_text() -> None:
    event: Any = {
        "request": {
            "headers": {"Authorization": "Bearer abc", "X-API-Key": API_KEY, "Accept": "application/json"},
            "cookies": {"sid": "x"},
            "query_string": f"page=2&access_token={BEARER}",
            "data": {"name": "ok", "new_password": "hunter2"},
        },
        "exception": {"values": [{"value": f"failed: {LEAKED_IN_MESSAGE}"}]},
        "breadcrumbs": {
            "values": [{"message": f"GET with Bearer {BEARER}"}, {"data": ["x-api-key", API_KEY]}]
        },
    }
    scrubbed: Any = scrub_event(event, {})
    request = scrubbed["request"]
    assert request["headers"] == {
        "Authorization": FILTERED,
        "X-API-Key": FILTERED,
        "Accept": "application/json",
    }
    assert request["cookies"] == FILTERED
    assert request["query_string"] == f"page=2&access_token={FILTERED}"
    assert request["data"] == {"name": "ok", "new_password": FILTERED}
    assert scrubbed["exception"]["values"][0]["value"] == f"failed: db-token={FILTERED}"
    crumbs = scrubbed["breadcrumbs"]["values"]
    assert crumbs == [{"message": f"GET with Bearer {FILTERED}"}, {"data": ["x-api-key", FILTERED]}]
