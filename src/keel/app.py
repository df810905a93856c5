"""Application factory: middleware order, routers, exception handlers, lifespan."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import structlog
from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse

from keel import __version__
from keel.admin.router import router as admin_router
from keel.alerts.router import router as alerts_router
from keel.api_keys.router import router as api_keys_router
from keel.auth.dependencies import caller_principal, identify_caller
from keel.auth.router import router as auth_router
from keel.cache.router import router as cache_router
from keel.documents.router import router as documents_router
from keel.folders.router import router as folders_router
from keel.health.router import router as health_router
from keel.jobs.router import router as jobs_router
from keel.metrics.router import router as metrics_router
from keel.metrics.router import summary_router as metrics_summary_router
from keel.platform.http.handlers import install_exception_handlers
from keel.platform.http.idempotency import IdempotencyMiddleware
from keel.platform.http.middleware import BodyLimitMiddleware, RequestContextMiddleware, TrustedHostMiddleware
from keel.platform.http.openapi import install_openapi
from keel.platform.http.routing import add_routes, operation_id
from keel.platform.http.versions import V1_PREFIX, V2_PREFIX, VersionMiddleware, v1_openapi
from keel.platform.observability.exporters import install_exporters
from keel.platform.observability.logging import AccessLog, configure_logging
from keel.platform.observability.metrics import HTTPMetrics
from keel.platform.observability.stats import RequestStats
from keel.platform.queue.worker import InProcessWorker, worker_name
from keel.platform.ratelimit.middleware import RateLimitMiddleware
from keel.platform.ratelimit.policies import Policies
from keel.platform.resources import Resources
from keel.products.router import router as products_router
from keel.realtime.router import events_router
from keel.realtime.router import router as realtime_router
from keel.realtime.router import socket_router as realtime_socket_router
from keel.realtime.service import RealtimeHub
from keel.search.router import router as search_router
from keel.settings import Environment, Settings, load_settings
from keel.tasks import registry as task_registry
from keel.users.bootstrap import ensure_admin
from keel.users.router import router as users_router
from keel.webhooks.router import router as webhooks_router

log = structlog.get_logger("keel")

DESCRIPTION = """\
Keel is a production-grade REST API: every JSON response under `/api/v2` is an
envelope `{success, version, timestamp, request_id, data, errors, warnings, links, meta}`.
Errors carry a stable `code` per item (`VALIDATION_ERROR`, `NOT_FOUND`, …), a dotted
`field` and a `severity`; the `X-Request-ID` header equals `request_id`.
"""

# Multipart framing and form fields around an upload's file.
UPLOAD_BODY_MARGIN = 64 * 1024

# Longest an access line waits in the buffer when traffic stops.
ACCESS_LOG_FLUSH_SECONDS = 1.0

# Headers a browser client may read on cross-origin responses.
EXPOSED_HEADERS = [
    "X-Request-ID",
    "API-Version",
    "ETag",
    "Link",
    "Location",
    "Retry-After",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "RateLimit",
    "RateLimit-Policy",
    "Idempotent-Replayed",
]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()
    access_log = configure_logging(
        settings.log_level,
        settings.effective_log_format,
        cache_loggers=settings.env is not Environment.TEST,
    )
    metrics = HTTPMetrics()
    stats = RequestStats(source=worker_name())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        resources = Resources.open(settings, metrics)
        app.state.resources = resources
        exporters.instrument_database(resources.db.engine)
        flusher = asyncio.create_task(_flush_periodically(access_log))
        stats_writer = asyncio.create_task(_write_stats_periodically(resources, stats))
        worker = InProcessWorker.start(resources, task_registry) if settings.runs_worker_in_process else None
        # The broker's listener (one per process) and the periodic system_status.
        app.state.realtime = await RealtimeHub.start(resources)
        log.info(
            "keel.started",
            env=settings.env.value,
            database=resources.db.engine.dialect.name,
            redis=resources.redis is not None,
            worker=worker is not None,
        )
        try:
            await ensure_admin(resources)  # KEEL_ADMIN_EMAIL / KEEL_ADMIN_PASSWORD, when set
            if settings.gc_freeze:
                _freeze_startup_objects()
            yield
        finally:
            flusher.cancel()
            stats_writer.cancel()
            await app.state.realtime.stop()
            await _write_stats(resources, stats)
            if worker is not None:
                # Running jobs get the shutdown grace to finish, then are released.
                await worker.stop()
            await resources.close()
            exporters.shutdown()
            log.info("keel.stopped")
            access_log.flush()

    app = FastAPI(
        title="Keel",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url="/redoc",
        generate_unique_id_function=operation_id,
        # FastAPI's OpenTelemetry hook asks the global providers on every request even
        # when none is configured; Keel's metrics and request ids cover this.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.request_stats = stats
    install_exception_handlers(app)
    install_openapi(app, settings)
    # Before any middleware is added: the error reporter must sit inside all of it.
    exporters = install_exporters(app, settings)

    for router in (
        health_router,
        metrics_router,
        metrics_summary_router,
        products_router,
        folders_router,
        auth_router,
        users_router,
        api_keys_router,
        admin_router,
        jobs_router,
        webhooks_router,
        cache_router,
        search_router,
        documents_router,
        realtime_router,
        realtime_socket_router,
        events_router,
        alerts_router,
    ):
        add_routes(app, router)
    _add_versioned_schemas(app)

    # add_middleware wraps what is already there, so the last one added is outermost:
    # Version -> RequestContext -> TrustedHost -> CORS -> BodyLimit -> RateLimit
    # -> Idempotency -> (exception handling) -> routes. Idempotency and the login limit
    # read whole bodies, so they sit inside BodyLimit; they see the v2 path, so a v1
    # retry of a v2 request replays and both versions share one rate-limit budget.
    # RateLimit uses the client IP RequestContext resolved, and its refusals get CORS.
    app.add_middleware(
        IdempotencyMiddleware,
        identify=identify_caller,
        ttl=timedelta(hours=settings.idempotency_ttl_hours),
    )
    if settings.rate_limit_enabled:
        app.add_middleware(
            RateLimitMiddleware,
            policies=Policies(settings),
            principal_of=caller_principal,
            probe_seconds=settings.rate_limit_probe_seconds,
        )
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_body_bytes,
        # The upload route streams the file to disk under its own cap; the margin is for
        # the multipart framing and the form fields.
        route_limits={("POST", "/documents"): settings.upload_max_bytes + UPLOAD_BODY_MARGIN},
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=True,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "Idempotency-Key",
                "If-Match",
                "If-None-Match",
                "X-API-Key",
                "X-Request-ID",
            ],
            expose_headers=EXPOSED_HEADERS,
            max_age=600,
        )
    if settings.trusted_hosts != ["*"]:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=settings.trusted_hosts)
    app.add_middleware(
        RequestContextMiddleware,
        metrics=metrics,
        stats=stats,
        access_log=access_log,
        trusted_proxies=settings.trusted_proxy_networks,
        hsts=settings.hsts,
        record_metrics=settings.request_metrics,
    )
    app.add_middleware(
        VersionMiddleware,
        v1_deprecated_on=settings.v1_deprecated_on,
        v1_sunset_on=settings.v1_sunset_on,
    )
    return app


async def _write_stats(resources: Resources, stats: RequestStats) -> None:
    try:
        await resources.stats.flush(stats)
    except Exception:  # the store is away: the next write carries the same changes, once
        log.warning("metrics.stats_write_failed", exc_info=True)


async def _write_stats_periodically(resources: Resources, stats: RequestStats) -> None:
    while True:
        await asyncio.sleep(resources.settings.metrics_flush_seconds)
        await _write_stats(resources, stats)


def _freeze_startup_objects() -> None:
    """Collect once, then freeze what remains: the objects start-up made live as long as
    the process, and a full collection that walks them all (hundreds of thousands) every
    few seconds was the long tail of every request's latency."""
    gc.collect()
    gc.freeze()
    log.info("gc.frozen", objects=gc.get_freeze_count())


async def _flush_periodically(access_log: AccessLog) -> None:
    while True:
        await asyncio.sleep(ACCESS_LOG_FLUSH_SECONDS)
        access_log.flush()


def _add_versioned_schemas(app: FastAPI) -> None:
    async def v2_schema(_request: Request) -> JSONResponse:
        return JSONResponse(app.openapi())

    async def v1_schema(_request: Request) -> JSONResponse:
        return JSONResponse(v1_openapi(app.openapi()))

    app.add_route(f"{V2_PREFIX}/openapi.json", v2_schema, include_in_schema=False)
    app.add_route(f"{V1_PREFIX}/openapi.json", v1_schema, include_in_schema=False)
