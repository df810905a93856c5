"""A sparse, mergeable latency histogram: DDSketch's logarithmic mapping at 2% relative accuracy.

Every value lands in the bucket ``ceil(log(v) / log(gamma))`` with ``gamma = (1 + a) / (1 - a)``,
so any quantile read back is within ``a`` (2%) of the true sample at that rank, whatever the
magnitude, and two sketches merge exactly by adding their bucket counts.

Written by hand on purpose: the ``ddsketch`` package's stores are dense and it serialises
via protobuf, while Keel keeps per-minute sketches as small JSON objects in the database
and as Redis hash fields (``HINCRBY`` per bucket), merged by addition.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from typing import Any

RELATIVE_ACCURACY = 0.02
# Values (milliseconds) at or below this go to the zero bucket and report as 0.0.
MIN_VALUE = 1e-3

_GAMMA = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
_LOG_GAMMA = math.log(_GAMMA)
# A bucket reports the value whose relative distance to both of its bounds is the accuracy.
_REPRESENTATIVE = 2 / (_GAMMA + 1)
# The keys add() can produce: anything else in stored data is corrupt.
_MIN_KEY = math.ceil(math.log(MIN_VALUE) / _LOG_GAMMA)
_MAX_KEY = math.ceil(math.log(sys.float_info.max) / _LOG_GAMMA)
_ZERO_FIELD = "z"
_BUCKET_PREFIX = "b:"


def bucket_key(value: float) -> int | None:
    """The bucket of a value (None for the zero bucket): ceil(log(value) / log(gamma)),
    gamma = (1 + a) / (1 - a).

    Raises ValueError for NaN and OverflowError for +inf, which ``LatencySketch.add`` ignores.
    """
    if value <= MIN_VALUE:
        return None
    return math.ceil(math.log(value) / _LOG_GAMMA)


def _representative(key: int) -> float:
    try:
        return _REPRESENTATIVE * _GAMMA**key
    except OverflowError:  # only the top bucket or two, near the largest float
        return math.inf


def _check_key(key: int) -> int:
    if not _MIN_KEY <= key <= _MAX_KEY:
        raise ValueError(f"bucket key {key} is outside [{_MIN_KEY}, {_MAX_KEY}]")
    return key


def _check_count(count: object) -> int:
    # bool is an int subclass, and a float count (even 3.0) means the data is not ours.
    if type(count) is not int:
        raise ValueError(f"bucket count must be an integer, not {count!r}")
    if count < 0:
        raise ValueError(f"bucket count must not be negative: {count}")
    return count


class LatencySketch:
    """Counts of latencies (ms) per logarithmic bucket, plus a zero bucket for tiny values.

    Sparse (a dict of the buckets actually hit) because a minute of one route's traffic
    touches a few dozen buckets out of thousands, and that dict is what gets stored:
    a short JSON object or a handful of Redis hash fields. ``count`` is kept in step by
    ``add`` and ``merge`` so quantiles need no extra pass to total the buckets.
    """

    __slots__ = ("buckets", "count", "zero")

    def __init__(self, buckets: dict[int, int] | None = None, zero: int = 0) -> None:
        self.buckets: dict[int, int] = dict(buckets) if buckets else {}
        self.zero = zero
        self.count = zero + sum(self.buckets.values())

    def add(self, value: float, count: int = 1) -> None:
        """Record ``value`` (ms) ``count`` times. Values at or below MIN_VALUE, negatives
        included, go to the zero bucket; NaN and +inf are ignored."""
        if value > MIN_VALUE:
            try:
                key = math.ceil(math.log(value) / _LOG_GAMMA)
            except OverflowError:  # +inf
                return
            buckets = self.buckets
            buckets[key] = buckets.get(key, 0) + count
        elif not math.isnan(value):
            self.zero += count
        else:
            return
        self.count += count

    def merge(self, other: LatencySketch) -> None:
        """Add ``other``'s counts into this sketch (exact: same result as adding its values)."""
        buckets = self.buckets
        for key, n in other.buckets.items():
            buckets[key] = buckets.get(key, 0) + n
        self.zero += other.zero
        self.count += other.count

    def quantile(self, q: float) -> float | None:
        """The value at quantile ``q`` (0 <= q <= 1) within 2%, or None when empty.

        Uses DDSketch's lower-rank convention: rank ``q * (count - 1)``, rounded down, i.e.
        ``sorted(values)[int(q * (count - 1))]``; the zero bucket reports 0.0.
        """
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantile must be within [0, 1], not {q!r}")
        if self.count == 0:
            return None
        rank = q * (self.count - 1)
        if rank < self.zero:
            return 0.0
        running = self.zero
        buckets = self.buckets
        for key in sorted(buckets):
            running += buckets[key]
            if running > rank:
                return _representative(key)
        raise RuntimeError("LatencySketch.count is out of step with its buckets")

    def to_json(self) -> dict[str, Any]:
        """``{"z": zero, "b": {"<key>": count, ...}}``, leaving out what is empty."""
        data: dict[str, Any] = {}
        if self.zero:
            data["z"] = self.zero
        buckets = {str(key): n for key, n in sorted(self.buckets.items()) if n}
        if buckets:
            data["b"] = buckets
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LatencySketch:
        """Inverse of ``to_json``; missing keys mean empty. Raises ValueError on a count
        that is not a non-negative integer or a key ``add`` could not have produced."""
        raw_buckets = data.get("b") or {}
        if not isinstance(raw_buckets, Mapping):
            raise ValueError(f"sketch buckets must be an object, not {raw_buckets!r}")
        buckets = {_check_key(int(key)): _check_count(n) for key, n in raw_buckets.items()}
        return cls(buckets, _check_count(data.get("z", 0)))

    @classmethod
    def from_fields(
        cls, fields: Mapping[str, int | str | bytes] | Mapping[bytes, int | str | bytes]
    ) -> LatencySketch:
        """From Redis hash fields ``b:<key>`` and ``z`` (names and values as str or bytes,
        so it works with or without ``decode_responses``); other fields are ignored."""
        buckets: dict[int, int] = {}
        zero = 0
        for raw_name, raw_value in fields.items():
            name = raw_name.decode() if isinstance(raw_name, bytes) else raw_name
            if name == _ZERO_FIELD:
                zero = _field_count(raw_value)
            elif name.startswith(_BUCKET_PREFIX):
                key = _check_key(int(name[len(_BUCKET_PREFIX) :]))
                buckets[key] = buckets.get(key, 0) + _field_count(raw_value)
        return cls(buckets, zero)

    def fields(self) -> dict[str, int]:
        """Inverse of ``from_fields``: ``{"z": n, "b:<key>": n}``, each one ``HINCRBY``
        away from merging into a stored sketch; empty buckets are left out."""
        out = {f"{_BUCKET_PREFIX}{key}": n for key, n in self.buckets.items() if n}
        if self.zero:
            out[_ZERO_FIELD] = self.zero
        return out

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LatencySketch):
            return NotImplemented
        return self.zero == other.zero and {k: n for k, n in self.buckets.items() if n} == {
            k: n for k, n in other.buckets.items() if n
        }

    # Mutable, so unhashable (as __eq__ alone would make it); typeshed spells it the same way.
    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"LatencySketch(count={self.count}, zero={self.zero}, buckets={len(self.buckets)})"


def _field_count(value: int | str | bytes) -> int:
    return _check_count(value if isinstance(value, int) else int(value))
