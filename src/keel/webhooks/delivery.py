"""What one delivery attempt sends and how long to wait after a failed one: the message
body, the retry schedule and ``Retry-After``. Pure functions, no I/O."""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

# Seconds to wait after the 1st, 2nd, ... failed attempt when the webhook has no retry
# policy: the schedule of the Standard Webhooks reference implementations (Svix).
DEFAULT_SCHEDULE = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
JITTER = 0.1
# A receiver's Retry-After is honoured up to this many seconds.
MAX_RETRY_AFTER = 86_400.0
# Statuses whose Retry-After says when to come back.
RETRY_AFTER_STATUSES = frozenset({429, 503})
MAX_RESPONSE_BYTES = 1024


def max_attempts(retry_policy: Mapping[str, Any] | None) -> int:
    if retry_policy is None:
        return len(DEFAULT_SCHEDULE) + 1
    return int(retry_policy["max_retries"]) + 1


def backoff(retry_policy: Mapping[str, Any] | None, failed_attempt: int) -> float:
    """Seconds before the next attempt after attempt number ``failed_attempt`` (from 1)
    failed, without jitter."""
    if retry_policy is None:
        return DEFAULT_SCHEDULE[max(1, min(failed_attempt, len(DEFAULT_SCHEDULE))) - 1]
    base = float(retry_policy["backoff_base"])
    ceiling = float(retry_policy["max_backoff"])
    # min() before the power would overflow: 2**1000 is fine for ints, not for floats.
    return min(ceiling, base * 2.0 ** min(max(failed_attempt - 1, 0), 64))


def jittered(seconds: float) -> float:
    """±10%, so the retries of many deliveries that failed together spread out."""
    return seconds * random.uniform(1 - JITTER, 1 + JITTER)  # noqa: S311 - not a secret


def retry_after(value: str | None, now: datetime) -> float | None:
    """A ``Retry-After`` value (delay seconds or an HTTP date) as seconds from ``now``,
    capped at a day; None when absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - now).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def excerpt(body: bytes) -> str:
    """A response body as storable text (PostgreSQL refuses NUL in text)."""
    return body[:MAX_RESPONSE_BYTES].decode("utf-8", errors="replace").replace("\x00", "\ufffd")
