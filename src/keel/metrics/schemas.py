from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from keel.platform.http.envelope import Schema

Period = Literal["1h", "24h", "7d"]


class RequestStats(Schema):
    count: int = Field(description="Requests answered in the period.")
    requests_per_second: float = Field(description="`count` over the period's length.")
    error_rate: float = Field(description="Share answered 5xx (0 to 1).")
    client_error_rate: float = Field(description="Share answered 4xx (0 to 1).")
    rate_limited: int = Field(description="Requests refused with 429 (part of the 4xx).")
    p50_ms: float | None = Field(description="Median latency (ms, within 2%); null without timed requests.")
    p95_ms: float | None
    p99_ms: float | None


class RouteStats(RequestStats):
    method: str
    route: str = Field(description="The route template (`/api/v2/products/{product_id}`), or `unmatched`.")


class MetricsSummary(Schema):
    period: Period
    since: datetime
    until: datetime
    overall: RequestStats
    routes: list[RouteStats] = Field(description="Busiest first.")
