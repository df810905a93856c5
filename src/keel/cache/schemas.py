from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, StringConstraints

from keel.platform.http.envelope import Schema

# Cache keys and globs are ASCII without spaces or control characters (see caching.keys).
CacheKey = Annotated[str, StringConstraints(min_length=1, max_length=512, pattern=r"^[!-~]+$")]


class CacheStats(Schema):
    backend: Literal["redis", "memory", "disabled"] = Field(
        description="Where entries live: Redis (shared by every replica) or this process's memory."
    )
    hit_rate: float = Field(description="cache_hits / total_requests, 0 before the first read.")
    total_requests: int = Field(description="Cached reads asked of this process's cache.")
    cache_hits: int
    cache_misses: int
    evicted_entries: int = Field(description="Live entries dropped to stay within the byte budget.")
    current_size_bytes: int = Field(description="Keys plus values of the live entries.")
    max_size_bytes: int = Field(description="The budget, KEEL_CACHE_MAX_BYTES (0 when disabled).")


class WarmResult(Schema):
    status: Literal["completed", "degraded", "disabled"] = Field(
        description="degraded: Redis is unreachable, nothing could be stored; disabled: no cache."
    )
    warmed_entries: int = Field(description="Entries loaded again (the most requested, as their viewers).")
    duration_ms: float
    timestamp: datetime


class InvalidateRequest(Schema):
    """Exact keys, a pattern, or both; neither drops nothing."""

    model_config = ConfigDict(extra="forbid")

    keys: list[CacheKey] = Field(
        default_factory=list,
        max_length=1000,
        description="Exact keys, e.g. `product:<id>:<viewer id>` (≤ 1,000).",
    )
    pattern: CacheKey | None = Field(
        None, description="A glob over keys (`*`, `?`, `[...]`), e.g. `product:<id>:*`; `*` drops everything."
    )


class InvalidateResult(Schema):
    invalidated: int = Field(description="Live entries dropped.")
    total_entries: int = Field(description="Live entries left in the cache.")
