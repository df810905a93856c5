"""Broker tests build no app, so nothing configures logging for them: an app's structlog
set-up writes to the ``sys.stdout`` of the test that built it, which pytest has closed
by the time these run. Each test here logs to its own output instead."""

from __future__ import annotations

import pytest

from keel.platform.observability.logging import configure_logging


@pytest.fixture(autouse=True)
def logs_to_this_tests_output() -> None:
    configure_logging("INFO", "console", cache_loggers=False)
