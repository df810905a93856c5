"""Prometheus metrics labelled by route *template*, so cardinality stays bounded.

One process (the default): the request path only bumps plain integers, and a custom
collector turns them into metric families when ``/metrics`` is scraped. Everything runs
on the event loop's thread, so prometheus_client's per-update locks (five lock round
trips per request for a counter, a histogram and a gauge) buy nothing here; the
collector costs about a third of them.

Several worker processes (``keel serve --workers N`` sets ``PROMETHEUS_MULTIPROC_DIR``):
prometheus_client's own metric objects write their values to shared files, merged when
any worker is scraped.
"""

from __future__ import annotations

import os
from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
UNMATCHED_ROUTE = "unmatched"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

_REQUESTS = ("keel_http_requests", "HTTP requests by method, route template and status.")
_LATENCY = ("keel_http_request_duration_seconds", "HTTP request latency by method and route template.")
_IN_FLIGHT = ("keel_http_requests_in_flight", "HTTP requests being served.")


class HTTPMetrics:
    """The request counter, latency histogram and in-flight gauge of one app."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.in_flight = 0
        self._counts: dict[tuple[str, str, int], int] = {}
        # (method, route) -> per-bucket counts (last one is +Inf) and the sum of seconds
        self._latency: dict[tuple[str, str], tuple[list[int], list[float]]] = {}
        self._shared: _SharedMetrics | None = None
        # Requests whose rate limits were decided in this process's memory because Redis
        # was unreachable (multiprocess mode writes it to the shared files like the rest).
        self.ratelimit_fallbacks = Counter(
            "keel_ratelimit_fallbacks",
            "Requests rate-limited from process memory while Redis was unreachable.",
            registry=self.registry,
        )
        if os.environ.get(MULTIPROC_ENV):
            self._shared = _SharedMetrics(self.registry)
        else:
            self.registry.register(_Collector(self))

    def started(self) -> None:
        if self._shared is not None:
            self._shared.in_flight.inc()
        self.in_flight += 1

    def finished(self, method: str, route: str, status: int, seconds: float) -> None:
        self.in_flight -= 1
        if self._shared is not None:
            self._shared.finished(method, route, status, seconds)
            return
        key = (method, route, status)
        self._counts[key] = self._counts.get(key, 0) + 1
        series = self._latency.get((method, route))
        if series is None:
            series = self._latency[(method, route)] = ([0] * (len(LATENCY_BUCKETS) + 1), [0.0])
        series[0][bisect_left(LATENCY_BUCKETS, seconds)] += 1
        series[1][0] += seconds

    def render(self) -> bytes:
        if self._shared is not None:
            merged = CollectorRegistry()
            MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
            return generate_latest(merged)
        return generate_latest(self.registry)


class _Collector(Collector):
    def __init__(self, metrics: HTTPMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        metrics = self._metrics
        requests = CounterMetricFamily(*_REQUESTS, labels=["method", "route", "status"])
        for (method, route, status), count in metrics._counts.items():
            requests.add_metric([method, route, str(status)], count)
        yield requests

        latency = HistogramMetricFamily(*_LATENCY, labels=["method", "route"])
        bounds = [*(str(bound) for bound in LATENCY_BUCKETS), "+Inf"]
        for (method, route), (counts, total) in metrics._latency.items():
            cumulative, running = [], 0
            for bound, count in zip(bounds, counts, strict=True):
                running += count
                cumulative.append((bound, float(running)))
            latency.add_metric([method, route], cumulative, sum_value=total[0])
        yield latency

        yield GaugeMetricFamily(*_IN_FLIGHT, value=metrics.in_flight)


class _SharedMetrics:
    """prometheus_client's file-backed metrics, for several worker processes."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(*_REQUESTS, ["method", "route", "status"], registry=registry)
        self.latency = Histogram(*_LATENCY, ["method", "route"], buckets=LATENCY_BUCKETS, registry=registry)
        self.in_flight = Gauge(*_IN_FLIGHT, registry=registry, multiprocess_mode="livesum")

    def finished(self, method: str, route: str, status: int, seconds: float) -> None:
        self.in_flight.dec()
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)
