"""``keel worker``: a job worker process until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import signal

import structlog

from keel.platform.observability.logging import configure_logging
from keel.platform.observability.metrics import HTTPMetrics
from keel.platform.queue.worker import Worker
from keel.platform.resources import Resources
from keel.settings import Settings
from keel.tasks import registry

log = structlog.get_logger("keel.worker")


async def run(settings: Settings, *, concurrency: int | None = None) -> None:
    configure_logging(settings.log_level, settings.effective_log_format)
    resources = Resources.open(settings, HTTPMetrics())
    worker = Worker(resources, concurrency=concurrency, tasks=registry)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        # First signal: stop claiming and let running jobs finish within the grace
        # period (KEEL_WORKER_SHUTDOWN_GRACE_SECONDS); what is left is released.
        loop.add_signal_handler(signum, worker.stop)
    try:
        await worker.run()
    finally:
        await resources.close()
