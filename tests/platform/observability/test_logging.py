"""Secrets never reach the log."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
import structlog

from keel.platform.observability.logging import REDACTED, configure_logging, redact_secrets


def redact(**event: Any) -> dict[str, Any]:
    return dict(redact_secrets(None, "info", dict(event)))


@pytest.mark.parametrize(
    "key",
    [
        "authorization",
        "Authorization",
        "cookie",
        "set_cookie",
        "password",
        "new_password",
        "access_token",
        "refresh_token",
        "api_key",
        "X-API-Key",
        "client_secret",
        "otp",
    ],
)
def test_sensitive_keys_are_redacted(key: str) -> None:
    assert redact(**{key: "s3cr3t"})[key] == REDACTED


def test_nested_secrets_are_redacted() -> None:
    event = redact(headers={"Authorization": "Bearer abc", "accept": "*/*"}, items=[{"password": "p"}])
    assert event["headers"] == {"Authorization": REDACTED, "accept": "*/*"}
    assert event["items"] == [{"password": REDACTED}]


def test_ordinary_keys_are_kept() -> None:
    assert redact(route="/health", status=200, event="http.request") == {
        "route": "/health",
        "status": 200,
        "event": "http.request",
    }


def test_json_lines_carry_bound_request_id_and_redact(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "json", cache_loggers=False)
    try:
        with structlog.contextvars.bound_contextvars(request_id="rid-42"):
            structlog.get_logger("t").info("auth.login", password="hunter2", user="u1")
            logging.getLogger("some.library").warning("third-party %s", "line")
        lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    finally:
        configure_logging("INFO", "console", cache_loggers=False)
    own, foreign = lines
    assert own["event"] == "auth.login"
    assert own["request_id"] == "rid-42"
    assert own["password"] == REDACTED
    assert own["user"] == "u1"
    assert own["level"] == "info"
    assert own["timestamp"].endswith("Z")
    assert foreign["event"] == "third-party line"
    assert foreign["request_id"] == "rid-42"
    assert foreign["logger"] == "some.library"
