"""The delivery rules that need no network: schedule, jitter, Retry-After, the message."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import orjson
import pytest

from keel.platform import events
from keel.webhooks import delivery

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def test_the_default_schedule_is_the_standard_webhooks_one() -> None:
    assert delivery.max_attempts(None) == 8
    waits = [delivery.backoff(None, attempt) for attempt in range(1, 8)]
    assert waits == [5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600]
    assert delivery.backoff(None, 20) == 10 * 3600


def test_a_retry_policy_doubles_up_to_its_ceiling() -> None:
    policy = {"max_retries": 5, "backoff_base": 2.0, "max_backoff": 10.0}
    assert delivery.max_attempts(policy) == 6
    assert [delivery.backoff(policy, n) for n in range(1, 6)] == [2, 4, 8, 10, 10]
    assert delivery.backoff({**policy, "max_backoff": 86_400}, 10_000) == 86_400


def test_jitter_stays_within_ten_percent() -> None:
    samples = [delivery.jittered(100.0) for _ in range(500)]
    assert all(90.0 <= sample <= 110.0 for sample in samples)
    assert len(set(samples)) > 1


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("9999999", 86_400.0),
        (format_datetime(NOW + timedelta(minutes=3), usegmt=True), 180.0),
        (format_datetime(NOW - timedelta(minutes=3), usegmt=True), 0.0),
        ("soon", None),
        ("-5", None),
    ],
)
def test_retry_after_reads_seconds_and_http_dates_capped_at_a_day(
    value: str | None, expected: float | None
) -> None:
    assert delivery.retry_after(value, NOW) == expected


def test_the_message_is_type_timestamp_and_data() -> None:
    body = events.body("product.created", NOW, {"id": "p1"})
    assert orjson.loads(body) == {
        "type": "product.created",
        "timestamp": "2026-12-03T12:00:00Z",
        "data": {"id": "p1"},
    }


def test_an_excerpt_is_at_most_a_kib_of_storable_text() -> None:
    text = delivery.excerpt(b"\x00ok\xff" + b"y" * 4096)
    assert "\x00" not in text
    assert text.startswith("\ufffdok\ufffd")
    assert len(text) == 1024
