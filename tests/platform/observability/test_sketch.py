"""The latency sketch reads quantiles back within 2%, merges exactly and survives storage."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Sequence
from typing import Any

import pytest

from keel.platform.observability.sketch import (
    MIN_VALUE,
    RELATIVE_ACCURACY,
    LatencySketch,
    bucket_key,
)

# The 2% bound is exact in real arithmetic; allow for float rounding at a bucket boundary.
ACCURACY = RELATIVE_ACCURACY + 1e-12

LINEAR = [float(ms) for ms in range(1, 101)]
# Exponential distribution (mean 20 ms) sampled at evenly spaced probabilities: a long tail.
EXPONENTIAL = [-20.0 * math.log(1 - (i + 0.5) / 100) for i in range(100)]
_rng = random.Random(20240611)
LOGNORMAL = [_rng.lognormvariate(3.0, 1.5) for _ in range(100)]


def sketch_of(values: Sequence[float]) -> LatencySketch:
    sketch = LatencySketch()
    for value in values:
        sketch.add(value)
    return sketch


def exact_quantile(values: Sequence[float], q: float) -> float:
    """DDSketch's lower-rank convention, on the raw values."""
    return sorted(values)[int(q * (len(values) - 1))]


def relative_error(estimate: float | None, exact: float) -> float:
    assert estimate is not None
    return abs(estimate - exact) / exact


@pytest.mark.parametrize(
    "values", [LINEAR, EXPONENTIAL, LOGNORMAL], ids=["linear", "exponential", "lognormal"]
)
@pytest.mark.parametrize("q", [0.5, 0.95, 0.99])
def test_p50_p95_p99_of_100_latencies_are_within_3_percent_of_exact(values: list[float], q: float) -> None:
    sketch = sketch_of(values)

    assert relative_error(sketch.quantile(q), exact_quantile(values, q)) <= 0.03


def test_single_values_from_0_01_ms_to_1e6_ms_read_back_within_2_percent() -> None:
    # 2,000 values evenly spaced in log space over eight orders of magnitude, so every
    # bucket in the range and many positions within each bucket are exercised.
    values = [10 ** (-2 + 8 * i / 1999) for i in range(2000)] + [0.01, 0.0123, 1.0, 3.7, 250.0, 1e6]

    for value in values:
        sketch = sketch_of([value])
        assert relative_error(sketch.quantile(0.5), value) <= ACCURACY, value


def test_bucket_key_is_ceil_of_log_base_gamma() -> None:
    gamma = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)

    assert bucket_key(1.0) == 0
    assert bucket_key(gamma * 1.0001) == 2
    assert bucket_key(0.5) == math.ceil(math.log(0.5) / math.log(gamma))
    assert bucket_key(MIN_VALUE) is None
    assert bucket_key(-3.0) is None


def test_merge_of_two_sketches_equals_the_sketch_of_the_combined_values() -> None:
    left, right = [*EXPONENTIAL[:60], 0.0], [*LOGNORMAL, -1.0, 5e-4]
    merged = sketch_of(left)
    merged.merge(sketch_of(right))
    combined = sketch_of(left + right)

    assert merged.buckets == combined.buckets
    assert merged.zero == combined.zero == 3
    assert merged.count == combined.count == len(left) + len(right)
    for q in (0.0, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 1.0):
        assert merged.quantile(q) == combined.quantile(q)


def test_merge_is_commutative() -> None:
    a_then_b = sketch_of(LINEAR)
    a_then_b.merge(sketch_of(LOGNORMAL))
    b_then_a = sketch_of(LOGNORMAL)
    b_then_a.merge(sketch_of(LINEAR))

    assert a_then_b == b_then_a
    assert a_then_b.buckets == b_then_a.buckets
    assert a_then_b.count == b_then_a.count


def test_count_stays_correct_after_add_with_count_and_merge() -> None:
    sketch = LatencySketch()
    sketch.add(12.0, count=5)
    sketch.add(0.0, count=2)
    sketch.add(12.0)
    other = sketch_of([1.0, 2.0, 0.0])
    sketch.merge(other)

    assert sketch.count == 11
    assert sketch.count == sketch.zero + sum(sketch.buckets.values())
    assert LatencySketch(sketch.buckets, sketch.zero).count == 11


def test_json_round_trip_preserves_buckets_zero_and_count() -> None:
    sketch = sketch_of([*LOGNORMAL, 0.0, -2.0])

    data = json.loads(json.dumps(sketch.to_json()))
    restored = LatencySketch.from_json(data)

    assert set(data) == {"z", "b"}
    assert all(isinstance(key, str) for key in data["b"])
    assert restored.buckets == sketch.buckets
    assert restored.zero == sketch.zero == 2
    assert restored.count == sketch.count == 102


def test_empty_sketch_serialises_to_an_empty_object_and_missing_keys_mean_empty() -> None:
    assert LatencySketch().to_json() == {}
    assert LatencySketch().fields() == {}
    restored = LatencySketch.from_json({})
    assert (restored.buckets, restored.zero, restored.count) == ({}, 0, 0)
    assert LatencySketch.from_json({"z": 4}).count == 4


def test_redis_fields_round_trip_preserves_buckets_zero_and_count() -> None:
    sketch = sketch_of([*EXPONENTIAL, 0.0])
    fields = sketch.fields()
    # What HGETALL returns: str digits with decode_responses, bytes without.
    as_str = {name: str(n) for name, n in fields.items()}
    as_bytes = {name.encode(): str(n).encode() for name, n in fields.items()}

    for restored in (
        LatencySketch.from_fields(fields),
        LatencySketch.from_fields(as_str),
        LatencySketch.from_fields(as_bytes),
    ):
        assert restored.buckets == sketch.buckets
        assert restored.zero == sketch.zero == 1
        assert restored.count == sketch.count == 101


def test_from_fields_ignores_other_fields() -> None:
    fields: dict[str, int | str | bytes] = {"z": b"2", "b:10": "3", "minute": "1718000000", "n": 5}
    restored = LatencySketch.from_fields(fields)

    assert restored.buckets == {10: 3}
    assert restored.zero == 2
    assert restored.count == 5


@pytest.mark.parametrize(
    "data",
    [
        {"b": {"10": 2.5}},
        {"b": {"10": "3"}},
        {"b": {"10": None}},
        {"b": {"10": True}},
        {"b": {"10": -1}},
        {"z": 1.0},
        {"z": "1"},
    ],
)
def test_from_json_rejects_a_non_integer_count_with_value_error(data: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="count"):
        LatencySketch.from_json(data)


@pytest.mark.parametrize("data", [{"b": {"x": 1}}, {"b": {"99999999": 1}}, {"b": [1, 2]}])
def test_from_json_rejects_keys_add_could_not_have_produced(data: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"bucket|invalid literal"):
        LatencySketch.from_json(data)


def test_empty_sketch_quantile_is_none() -> None:
    sketch = LatencySketch()

    assert sketch.quantile(0.0) is None
    assert sketch.quantile(0.5) is None
    assert sketch.quantile(1.0) is None


def test_values_at_or_below_min_value_and_negative_go_to_zero_bucket_and_report_0() -> None:
    sketch = sketch_of([MIN_VALUE, MIN_VALUE / 2, 0.0, -0.0, -5.0, -math.inf])

    assert sketch.zero == sketch.count == 6
    assert sketch.buckets == {}
    assert sketch.quantile(0.0) == sketch.quantile(0.5) == sketch.quantile(1.0) == 0.0


def test_zero_bucket_holds_the_lowest_ranks() -> None:
    sketch = sketch_of([0.0, -1.0, 10.0, 20.0])

    assert sketch.quantile(0.0) == 0.0
    assert sketch.quantile(1 / 3) == 0.0  # rank 1: the second zero-bucket value
    assert relative_error(sketch.quantile(2 / 3), 10.0) <= ACCURACY


def test_nan_is_ignored() -> None:
    sketch = sketch_of([math.nan, 5.0, math.nan])

    assert sketch.count == 1
    assert sketch.zero == 0
    assert sum(sketch.buckets.values()) == 1
    assert relative_error(sketch.quantile(0.5), 5.0) <= ACCURACY


@pytest.mark.parametrize(
    "values", [LINEAR, EXPONENTIAL, LOGNORMAL], ids=["linear", "exponential", "lognormal"]
)
def test_quantile_0_is_the_minimum_and_quantile_1_the_maximum_within_2_percent(values: list[float]) -> None:
    sketch = sketch_of(values)

    assert relative_error(sketch.quantile(0.0), min(values)) <= ACCURACY
    assert relative_error(sketch.quantile(1.0), max(values)) <= ACCURACY
    assert bucket_key(min(values)) in sketch.buckets
    assert bucket_key(max(values)) in sketch.buckets


@pytest.mark.parametrize("q", [-0.01, 1.01, math.nan])
def test_quantile_outside_0_to_1_raises_value_error(q: float) -> None:
    with pytest.raises(ValueError, match="quantile"):
        sketch_of(LINEAR).quantile(q)
