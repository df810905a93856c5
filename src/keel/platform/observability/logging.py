"""structlog set-up: JSON lines in production, a readable console in development.

Standard-library loggers (uvicorn, SQLAlchemy, Alembic) are routed through the same
processors, so every line carries the request id and passes the redaction step.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import MutableMapping
from typing import Any, BinaryIO

import orjson
import structlog
from structlog.types import EventDict, Processor

from keel.platform.http.context import request_id_var, utc_timestamp_micro

REDACTED = "[REDACTED]"
_SENSITIVE_KEY = re.compile(
    r"authorization|cookie|passw(or)?d|secret|token|api[-_]?key|credential|otp|signature",
    re.IGNORECASE,
)
_sensitive_cache: dict[str, bool] = {}


def _is_sensitive(key: str) -> bool:
    decision = _sensitive_cache.get(key)
    if decision is None:
        decision = bool(_SENSITIVE_KEY.search(key))
        if len(_sensitive_cache) < 4096:
            _sensitive_cache[key] = decision
    return decision


def _redact(value: Any, depth: int = 0) -> Any:
    if depth > 4:
        return value
    if isinstance(value, MutableMapping):
        return {
            key: REDACTED if isinstance(key, str) and _is_sensitive(key) else _redact(item, depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redact(item, depth + 1) for item in value]
    return value


def redact_secrets(_logger: Any, _method: str, event_dict: EventDict) -> EventDict:
    """Replace the value of any key that names a secret, at any nesting depth."""
    for key, value in event_dict.items():
        if _is_sensitive(key):
            event_dict[key] = REDACTED
        elif isinstance(value, MutableMapping | list | tuple):
            event_dict[key] = _redact(value)
    return event_dict


def _orjson_str(obj: Any, **_: Any) -> str:
    return orjson.dumps(obj, default=str).decode()


def _orjson_bytes(obj: Any, **_: Any) -> bytes:
    return orjson.dumps(obj, default=str)


def _drop_color_message(_logger: Any, _method: str, event_dict: EventDict) -> EventDict:
    # uvicorn duplicates its message with ANSI colours for its own formatter.
    event_dict.pop("color_message", None)
    return event_dict


def add_request_id(_logger: Any, _method: str, event_dict: EventDict) -> EventDict:
    """Every line logged while serving a request carries its id (read, never bound)."""
    request_id = request_id_var.get()
    if request_id:
        event_dict.setdefault("request_id", request_id)
    return event_dict


class AccessLog:
    """Where the one line per request goes; this default sends it through structlog."""

    _logger = structlog.get_logger("keel.http")

    def __call__(  # noqa: PLR0917 - once per request: positional, no dict to build
        self, method: str, route: str, path: str, status: int, duration_ms: float, client: str, principal: Any
    ) -> None:
        self._logger.info(
            "http.request",
            method=method,
            route=route,
            path=path,
            status=status,
            duration_ms=duration_ms,
            client=client,
            principal=principal,
        )

    def flush(self) -> None:
        """Push buffered lines out (called periodically and at shutdown)."""


class NoAccessLog(AccessLog):
    def __call__(  # noqa: PLR0917 - once per request: positional, no dict to build
        self, method: str, route: str, path: str, status: int, duration_ms: float, client: str, principal: Any
    ) -> None:
        return None


class JsonAccessLog(AccessLog):
    """Writes the access line straight to the stream as JSON, buffered.

    structlog's processor chain costs ~9 µs per line on these machines against ~2 µs
    for this; the access line's keys are fixed and carry no secrets, so the chain's
    merging and redaction would have nothing to do on the hottest log call there is.
    Lines are flushed at most ``FLUSH_SECONDS`` after they are written (here when the
    next request ends, or by the app's periodic flush when traffic stops), not one
    write system call per request.
    """

    FLUSH_SECONDS = 0.5

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._flushed_at = time.monotonic()

    def flush(self) -> None:
        self._stream.flush()
        self._flushed_at = time.monotonic()

    def __call__(  # noqa: PLR0917 - once per request: positional, no dict to build
        self, method: str, route: str, path: str, status: int, duration_ms: float, client: str, principal: Any
    ) -> None:
        line = {
            "event": "http.request",
            "level": "info",
            "timestamp": utc_timestamp_micro(),
            "request_id": request_id_var.get(),
            "method": method,
            "route": route,
            "path": path,
            "status": status,
            "duration_ms": duration_ms,
            "client": client,
            "principal": principal,
        }
        self._stream.write(orjson.dumps(line, default=str, option=orjson.OPT_APPEND_NEWLINE))
        if time.monotonic() - self._flushed_at >= self.FLUSH_SECONDS:
            self.flush()


def configure_logging(level: str, fmt: str, *, cache_loggers: bool = True) -> AccessLog:
    """Configure structlog and the standard library; return the access-line writer.

    ``cache_loggers=False`` lets ``structlog.testing.capture_logs`` see every logger
    (and routes access lines through structlog so tests can capture them too).
    """
    numeric_level = logging.getLevelNamesMapping()[level]
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        add_request_id,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_secrets,
    ]
    if fmt == "json":
        tail: list[Processor] = [
            structlog.processors.dict_tracebacks,
        ]
        renderer: Processor = structlog.processors.JSONRenderer(serializer=_orjson_bytes)
        stdlib_renderer: Processor = structlog.processors.JSONRenderer(serializer=_orjson_str)
        factory: Any = structlog.BytesLoggerFactory(sys.stdout.buffer)
    else:
        tail = []
        # Plain tracebacks: rich's pretty ones print local variables, which can hold
        # passwords and tokens.
        renderer = stdlib_renderer = structlog.dev.ConsoleRenderer(
            exception_formatter=structlog.dev.plain_traceback
        )
        factory = structlog.PrintLoggerFactory(sys.stdout)

    structlog.configure(
        processors=[*shared, *tail, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=factory,
        cache_logger_on_first_use=cache_loggers,
    )

    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.stdlib.add_logger_name,
                structlog.stdlib.ExtraAdder(),
                _drop_color_message,
                *shared,
            ],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                *tail,
                stdlib_renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(numeric_level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True
    _quiet_libraries(numeric_level)
    if numeric_level > logging.INFO:
        return NoAccessLog()
    if fmt == "json" and cache_loggers:
        return JsonAccessLog(sys.stdout.buffer)
    return AccessLog()


def _quiet_libraries(numeric_level: int) -> None:
    # Alembic announces its dialect on every revision lookup (the readiness check).
    logging.getLogger("alembic.runtime.migration").setLevel(max(numeric_level, logging.WARNING))
    # Keel writes its own access line; uvicorn's would duplicate it without the request id.
    logging.getLogger("uvicorn.access").disabled = True
