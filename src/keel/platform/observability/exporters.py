"""Optional exporters: OpenTelemetry traces over OTLP, and error reports to Sentry.

Both are off unless configured and come from optional extras:

- tracing, when the standard ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or
  ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set: spans of requests, SQL statements,
  outgoing httpx calls and Redis commands, exported over OTLP HTTP/protobuf (the
  ``otel`` extra). The SDK reads the other ``OTEL_*`` variables itself (service name,
  resource attributes, headers, sampler, batching);
- error reporting, when ``KEEL_SENTRY_DSN`` is set (the ``sentry`` extra).

When neither is configured nothing of theirs is imported and the app is left as it was:
requests take the same path as in a build without the extras.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import ASGIApp, Receive, Scope, Send

from keel import __version__
from keel.settings import Settings

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from sentry_sdk.types import Event, Hint

DEFAULT_SERVICE_NAME = "keel"
FILTERED = "[Filtered]"

# Keys whose values never leave the process: headers (Authorization, Cookie, X-API-Key),
# form and JSON fields, local variables. The same words as the log redaction, and
# "session".
_SENSITIVE_KEY = re.compile(
    r"authorization|cookie|passw(or)?d|secret|token|api[-_]?key|credential|otp|signature|session",
    re.IGNORECASE,
)
# Credentials inside free text (messages, query strings, header pairs): bearer and basic
# credentials, JWTs, Keel API keys and webhook secrets, and `name=value` or `"name": "value"`
# pairs (query strings, reprs of bodies and dicts) whose name says secret.
_SENSITIVE_TEXT = re.compile(
    r"(?P<scheme>\b(?:bearer|basic)\s+)[^\s,;\"']+"
    r"|\beyJ[\w-]+\.[\w-]+\.[\w-]*"
    r"|\bkeel_[\w-]{20,}|\bwhsec_[\w+/=]{16,}"
    r"|(?P<name>[\w.-]*(?:passw(?:or)?d|secret|token|api[-_]?key|session)[\w.-]*[\"']?\s*[=:]\s*[\"']?)"
    r"[^&\s,;\"'}]+",
    re.IGNORECASE,
)


class MissingExtra(RuntimeError):
    """An exporter is configured but its optional dependencies are not installed."""

    def __init__(self, variable: str, extra: str) -> None:
        super().__init__(
            f"{variable} is set, but the `{extra}` extra is not installed: "
            f"pip install 'keel[{extra}]' (in a checkout: uv sync --extra {extra})"
        )


def tracing_configured(environ: Mapping[str, str] = os.environ) -> bool:
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    if environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return False
    return bool(
        environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


@dataclass(slots=True)
class Exporters:
    """What :func:`install_exporters` switched on: the database joins once its engine
    exists, and :meth:`shutdown` sends what is buffered."""

    tracing: Tracing | None = None
    error_reporting: ErrorReporting | None = None

    @property
    def active(self) -> bool:
        return self.tracing is not None or self.error_reporting is not None

    def instrument_database(self, engine: AsyncEngine) -> None:
        if self.tracing is not None:
            self.tracing.instrument_database(engine)

    def shutdown(self) -> None:
        """Blocks while the last spans and reports go out (up to the exporters' timeouts):
        it runs as the app stops, with no request left to hold up."""
        if self.tracing is not None:
            self.tracing.shutdown()
        if self.error_reporting is not None:
            self.error_reporting.shutdown()


def install_exporters(app: FastAPI, settings: Settings) -> Exporters:
    """Switch on the configured exporters for ``app``: call it in ``create_app()`` before
    any middleware is added (the error reporter must sit inside Keel's middleware, which
    turns an unhandled exception into the 500 envelope) and before the app serves.

    Raises :class:`MissingExtra` when an exporter is configured without its extra.
    """
    exporters = Exporters()
    if tracing_configured():
        exporters.tracing = Tracing.start(app)
    dsn = settings.sentry_dsn.get_secret_value() if settings.sentry_dsn is not None else ""
    if dsn:
        exporters.error_reporting = ErrorReporting.start(app, settings, dsn)
    return exporters


# --- Tracing ---------------------------------------------------------------------------


@dataclass(slots=True)
class Tracing:
    """An OTLP pipeline of its own, handed to each instrumentation.

    The provider is not made the global one: OpenTelemetry lets that be set once per
    process, and a provider that is only passed around can be shut down and its
    instrumentations removed, leaving the process as it was (tests do this many times).
    """

    provider: TracerProvider
    _undo: list[Callable[[], None]] = field(default_factory=list)

    @classmethod
    def start(cls, app: FastAPI) -> Tracing:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
            from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
            from opentelemetry.instrumentation.redis import RedisInstrumentor
            from opentelemetry.metrics import NoOpMeterProvider
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
        except ImportError:
            raise MissingExtra("OTEL_EXPORTER_OTLP_ENDPOINT", "otel") from None

        # The exporter reads the endpoint, headers, timeout and compression from OTEL_*.
        provider = TracerProvider(resource=_resource())
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        tracing = cls(provider=provider)
        # FastAPI's own telemetry hook (FastAPI(telemetry=...)) stays off: it would need
        # the provider when the app is built, and it steps aside for this middleware anyway.
        FastAPIInstrumentor.instrument_app(
            app,
            tracer_provider=provider,
            # Keel's request metrics are Prometheus's (GET /metrics).
            meter_provider=NoOpMeterProvider(),
            # One span per ASGI message would triple a request's spans and tell nothing.
            exclude_spans=["receive", "send"],
        )
        tracing._undo.append(lambda: FastAPIInstrumentor.uninstrument_app(app))
        for instrumentor in (HTTPXClientInstrumentor(), RedisInstrumentor()):
            instrumentor.instrument(tracer_provider=provider)
            if instrumentor.is_instrumented_by_opentelemetry:
                tracing._undo.append(instrumentor.uninstrument)
        return tracing

    def instrument_database(self, engine: AsyncEngine) -> None:
        from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
        from opentelemetry.metrics import NoOpMeterProvider

        instrumentor = SQLAlchemyInstrumentor()
        instrumentor.instrument(
            # The async engine runs its statements through the sync engine's events.
            engine=engine.sync_engine,
            tracer_provider=self.provider,
            meter_provider=NoOpMeterProvider(),
            # It declares "sqlalchemy < 2.1" and would refuse 2.1, which it traces
            # correctly through the same events (the tests check its spans).
            skip_dep_check=True,
        )
        if instrumentor.is_instrumented_by_opentelemetry:
            self._undo.append(instrumentor.uninstrument)

    def shutdown(self) -> None:
        """Remove the instrumentations, then export the spans still buffered."""
        while self._undo:
            self._undo.pop()()
        self.provider.shutdown()


def _resource() -> Resource:
    from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource

    # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win; without them the SDK names the
    # service "unknown_service…", which is where Keel's own name goes.
    resource = Resource({SERVICE_VERSION: __version__}).merge(Resource.create())
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
    return resource


# --- Error reporting -------------------------------------------------------------------


@dataclass(slots=True)
class ErrorReporting:
    """sentry-sdk with its Starlette and FastAPI integrations, and nothing personal sent."""

    flush_seconds: float = 2.0

    @classmethod
    def start(cls, app: FastAPI, settings: Settings, dsn: str) -> ErrorReporting:
        try:
            import sentry_sdk
            from sentry_sdk.integrations.fastapi import FastApiIntegration
            from sentry_sdk.integrations.starlette import StarletteIntegration
            from sentry_sdk.utils import BadDsn
        except ImportError:
            raise MissingExtra("KEEL_SENTRY_DSN", "sentry") from None

        try:
            sentry_sdk.init(
                dsn=dsn,
                environment=settings.sentry_environment or settings.env.value,
                release=f"keel@{__version__}",
                send_default_pii=False,
                # None, not 0: no transaction is even started for requests not sampled.
                traces_sample_rate=settings.sentry_traces_sample_rate or None,
                before_send=scrub_event,
                before_send_transaction=scrub_event,
                integrations=[StarletteIntegration(), FastApiIntegration()],
            )
        except BadDsn as exc:
            raise ValueError(f"KEEL_SENTRY_DSN is not a valid Sentry DSN: {exc}") from None
        app.add_middleware(ReportUnhandled, capture=sentry_sdk.capture_exception)
        return cls()

    def shutdown(self) -> None:
        import sentry_sdk

        sentry_sdk.get_client().close(timeout=self.flush_seconds)


class ReportUnhandled:
    """Reports an exception no handler took, on its way out to Keel's request middleware.

    Sentry's own ASGI middleware wraps the whole app, but RequestContextMiddleware turns
    the exception into the 500 envelope before it gets there, so it would see a
    response, not the error.
    """

    def __init__(self, app: ASGIApp, *, capture: Callable[[BaseException], object]) -> None:
        self.app = app
        self.capture = capture

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        except Exception as exc:
            self.capture(exc)
            raise


def scrub_event(event: Event, _hint: Hint) -> Event:
    """``before_send``: on top of Sentry's own scrubbing (``send_default_pii=False``),
    filter every value under a key that names a secret, at any depth (request headers
    and data, cookies, local variables, breadcrumbs), and credentials in any text."""
    return cast("Event", _scrub(event))


def _scrub(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: FILTERED if isinstance(key, str) and _SENSITIVE_KEY.search(key) else _scrub(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_scrub(item) for item in value]
    if isinstance(value, str):
        return _SENSITIVE_TEXT.sub(_filter_match, value)
    return value


def _filter_match(match: re.Match[str]) -> str:
    return (match.group("scheme") or match.group("name") or "") + FILTERED
