"""The HTTP contract of API.md, as seen by a client, on both backends."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.types import Message
from structlog.testing import capture_logs

from keel.platform.http.envelope import API_VERSION
from tests.conftest import ClientFactory
from tests.platform.http.conftest import SECRET_IN_EXCEPTION

ENVELOPE_KEYS = {
    "success",
    "version",
    "timestamp",
    "request_id",
    "data",
    "errors",
    "warnings",
    "links",
    "meta",
}
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == ENVELOPE_KEYS
    assert body["success"] is False
    assert body["data"] is None
    assert body["errors"], "an error envelope has at least one item"
    assert {item["code"] for item in body["errors"]} == {code}
    assert body["request_id"] == response.headers["x-request-id"]
    return body


async def test_success_envelope_has_every_field_and_matches_request_id(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    body = response.json()
    assert set(body) == ENVELOPE_KEYS
    assert body["success"] is True
    assert body["version"] == API_VERSION
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", body["timestamp"])
    assert body["request_id"] == response.headers["x-request-id"]
    assert body["errors"] == []
    assert body["warnings"] == []


async def test_every_response_carries_security_and_version_headers(client: httpx.AsyncClient) -> None:
    for response in (await client.get("/health"), await client.get("/nowhere")):
        for name, value in SECURITY_HEADERS.items():
            assert response.headers[name] == value
        assert response.headers["api-version"] == API_VERSION
        assert "default-src 'none'" in response.headers["content-security-policy"]
        assert "strict-transport-security" not in response.headers


async def test_incoming_request_id_is_honoured(client: httpx.AsyncClient) -> None:
    response = await client.get("/health", headers={"X-Request-ID": "client-abc.123:x"})
    assert response.headers["x-request-id"] == "client-abc.123:x"
    assert response.json()["request_id"] == "client-abc.123:x"


@pytest.mark.parametrize("bad_id", ["a" * 129, "has space", 'quote"inject', "new\\line", "<script>"])
async def test_unsafe_request_id_is_replaced(client: httpx.AsyncClient, bad_id: str) -> None:
    response = await client.get("/health", headers={"X-Request-ID": bad_id})
    generated = response.headers["x-request-id"]
    assert generated != bad_id
    assert re.fullmatch(r"[0-9a-f-]{36}", generated)


async def test_unknown_route_is_404_envelope(client: httpx.AsyncClient) -> None:
    assert_error(await client.get("/api/v2/does-not-exist"), 404, "NOT_FOUND")


async def test_wrong_method_is_405_envelope_with_allow(client: httpx.AsyncClient) -> None:
    response = await client.delete("/health")
    assert_error(response, 405, "METHOD_NOT_ALLOWED")
    assert response.headers["allow"] == "GET"


async def test_invalid_input_gives_one_item_per_field(client: httpx.AsyncClient) -> None:
    response = await client.post("/probe/items", json={"name": "", "price": "-1", "tags": ["a", ""]})
    body = assert_error(response, 422, "VALIDATION_ERROR")
    fields = sorted(item["field"] for item in body["errors"])
    assert fields == ["name", "price", "tags.1"]
    assert all(item["message"] for item in body["errors"])


async def test_missing_and_unknown_query_values_name_the_field(client: httpx.AsyncClient) -> None:
    body = assert_error(await client.get("/health", params={"detailed": "perhaps"}), 422, "VALIDATION_ERROR")
    assert [item["field"] for item in body["errors"]] == ["detailed"]


async def test_valid_input_is_accepted(client: httpx.AsyncClient) -> None:
    response = await client.post("/probe/items", json={"name": "pen", "price": "1.50", "tags": ["x"]})
    assert response.status_code == 201
    assert response.json()["data"] == {"name": "pen", "price": "1.50", "tags": ["x"]}


async def test_malformed_json_is_400_bad_request(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/probe/items", content=b'{"name": "pen", "price": ', headers={"content-type": "application/json"}
    )
    body = assert_error(response, 400, "BAD_REQUEST")
    assert body["errors"][0]["field"] == "body"


async def test_deeply_nested_json_is_a_client_error(client: httpx.AsyncClient) -> None:
    depth = 100_000
    payload = b"[" * depth + b"]" * depth
    response = await client.post(
        "/probe/items", content=payload, headers={"content-type": "application/json"}
    )
    assert 400 <= response.status_code < 500
    assert response.json()["success"] is False


async def test_body_over_limit_is_413_without_reading_it(client: httpx.AsyncClient) -> None:
    payload = b"x" * (12 * 1024 * 1024)
    response = await client.post(
        "/probe/items", content=payload, headers={"content-type": "application/json"}
    )
    body = assert_error(response, 413, "PAYLOAD_TOO_LARGE")
    assert "1048576" in body["errors"][0]["message"]
    assert response.headers["connection"] == "close"


async def test_streamed_body_over_limit_is_413(client: httpx.AsyncClient) -> None:
    async def chunks() -> Any:
        for _ in range(20):
            yield b" " * 100_000

    # A generator body is sent without Content-Length: the limit must count bytes.
    response = await client.post(
        "/probe/items", content=chunks(), headers={"content-type": "application/json"}
    )
    body = assert_error(response, 413, "PAYLOAD_TOO_LARGE")
    assert "1048576" in body["errors"][0]["message"]
    # The rest of the body is never read: the connection cannot carry another request.
    assert response.headers["connection"] == "close"


async def test_declared_keel_error_is_rendered_with_field(client: httpx.AsyncClient) -> None:
    body = assert_error(await client.get("/probe/conflict"), 409, "CONFLICT")
    assert body["errors"][0] == {
        "code": "CONFLICT",
        "message": "That name is taken.",
        "field": "name",
        "severity": "low",
    }


async def test_crash_is_500_that_reveals_nothing_and_logs_traceback(client: httpx.AsyncClient) -> None:
    with capture_logs() as logs:
        response = await client.get("/probe/boom")
    assert_error(response, 500, "INTERNAL_ERROR")
    assert SECRET_IN_EXCEPTION not in response.text
    assert "Traceback" not in response.text
    assert "RuntimeError" not in response.text
    errors = [entry for entry in logs if entry["event"] == "http.unhandled_error"]
    assert len(errors) == 1
    assert errors[0]["exc_info"] is True
    assert errors[0]["log_level"] == "error"
    access = [entry for entry in logs if entry["event"] == "http.request"]
    assert access[0]["status"] == 500


async def test_access_log_line_has_template_status_and_duration(client: httpx.AsyncClient) -> None:
    with capture_logs() as logs:
        response = await client.post("/probe/items", json={"name": "x", "price": "1"})
    (line,) = [entry for entry in logs if entry["event"] == "http.request"]
    assert line["method"] == "POST"
    assert line["route"] == "/probe/items"
    assert line["status"] == response.status_code
    assert line["duration_ms"] >= 0
    assert line["client"] == "127.0.0.1"


async def test_openapi_documents_the_error_envelope(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    assert "ErrorEnvelope" in schema["components"]["schemas"]
    codes = schema["components"]["schemas"]["ErrorItem"]["properties"]["code"]["enum"]
    assert {"VALIDATION_ERROR", "NOT_FOUND", "PAYLOAD_TOO_LARGE", "INTERNAL_ERROR"} <= set(codes)
    health = schema["paths"]["/health"]["get"]
    assert health["responses"]["422"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "ErrorEnvelope"
    )
    assert "HTTPValidationError" not in json.dumps(schema)


async def test_docs_pages_render_with_relaxed_csp(client: httpx.AsyncClient) -> None:
    for path in ("/docs", "/redoc"):
        response = await client.get(path)
        assert response.status_code == 200
        assert "text/html" in response.headers["content-type"]
        assert "cdn.jsdelivr.net" in response.headers["content-security-policy"]
        assert response.headers["x-frame-options"] == "DENY"


async def test_cors_allows_only_configured_origins(client_with: ClientFactory) -> None:
    async with client_with(cors_origins=["https://app.example.com"]) as client:
        allowed = await client.get("/health", headers={"Origin": "https://app.example.com"})
        assert allowed.headers["access-control-allow-origin"] == "https://app.example.com"
        assert "X-Request-ID" in allowed.headers["access-control-expose-headers"]
        denied = await client.get("/health", headers={"Origin": "https://evil.example.net"})
        assert "access-control-allow-origin" not in denied.headers


async def test_no_cors_headers_without_configuration(client: httpx.AsyncClient) -> None:
    response = await client.get("/health", headers={"Origin": "https://app.example.com"})
    assert "access-control-allow-origin" not in response.headers


async def test_untrusted_host_is_rejected_with_envelope(client_with: ClientFactory) -> None:
    async with client_with(trusted_hosts=["api.example.com", "*.internal.example.com"]) as client:
        assert (await client.get("/health", headers={"Host": "api.example.com"})).status_code == 200
        assert (
            await client.get("/health", headers={"Host": "a.internal.example.com:8443"})
        ).status_code == 200
        assert_error(await client.get("/health", headers={"Host": "evil.example.net"}), 400, "BAD_REQUEST")
        assert_error(
            await client.get("/health", headers={"Host": "internal.example.com.evil.net"}), 400, "BAD_REQUEST"
        )


async def test_hsts_sent_when_configured(client_with: ClientFactory) -> None:
    async with client_with(hsts=True) as client:
        response = await client.get("/health")
    assert response.headers["strict-transport-security"].startswith("max-age=")


async def test_hsts_sent_over_https(client: httpx.AsyncClient) -> None:
    response = await client.get("https://testserver/health")
    assert "strict-transport-security" in response.headers


async def test_client_ip_from_trusted_proxy_chain(client_with: ClientFactory) -> None:
    async with client_with(trusted_proxies=["127.0.0.0/8", "10.0.0.0/8"]) as client:
        with capture_logs() as logs:
            await client.get("/health", headers={"X-Forwarded-For": "6.6.6.6, 203.0.113.9, 10.1.2.3"})
    (line,) = [entry for entry in logs if entry["event"] == "http.request"]
    assert line["client"] == "203.0.113.9"


def post_scope(path: str, *, scheme: str = "http", http_version: str = "1.1") -> dict[str, object]:
    """A raw ASGI scope for a JSON POST, for tests that drive the app without a client."""
    return {
        "type": "http",
        "method": "POST",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"host", b"testserver")],
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
        "scheme": scheme,
        "http_version": http_version,
        "root_path": "",
        "asgi": {"version": "3.0"},
    }


async def test_client_disconnect_is_not_counted_as_a_server_error(app: FastAPI) -> None:
    from keel.platform.http.middleware import CLIENT_CLOSED_REQUEST

    async def receive() -> Message:
        raise asyncio.CancelledError

    scope = post_scope("/probe/items")

    async def send(_message: Message) -> None:
        raise AssertionError("nothing is sent to a client that left")

    with capture_logs() as logs, pytest.raises(asyncio.CancelledError):
        await app(scope, receive, send)
    (line,) = [entry for entry in logs if entry["event"] == "http.request"]
    assert line["status"] == CLIENT_CLOSED_REQUEST


async def test_http2_body_without_length_headers_is_still_counted(app: FastAPI) -> None:
    chunks = [b" " * 600_000, b" " * 600_000]

    async def receive() -> Message:
        body = chunks.pop(0) if chunks else b""
        return {"type": "http.request", "body": body, "more_body": bool(chunks)}

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    scope = post_scope("/probe/items", scheme="https", http_version="2")
    await app(scope, receive, send)
    assert sent[0]["status"] == 413


async def test_405_lists_every_method_the_path_serves(client: httpx.AsyncClient) -> None:
    response = await client.put("/api/v2/users/me", json={})
    assert response.status_code == 405
    assert set(response.headers["allow"].split(", ")) >= {"PATCH"}
    response = await client.delete("/api/v2/auth/me")
    assert response.headers["allow"] == "GET"


async def test_operation_ids_are_unique_endpoint_names(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    ids = [op["operationId"] for item in schema["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))
    assert "register" in ids
    assert "health" in ids
