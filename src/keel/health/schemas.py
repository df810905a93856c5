from typing import Literal

from pydantic import Field

from keel.platform.http.envelope import Schema

CheckStatus = Literal["ok", "degraded", "down", "disabled"]
OverallStatus = Literal["ok", "degraded", "unavailable"]


class Liveness(Schema):
    status: Literal["ok"] = Field(description="Always ok while the process serves requests.")
    version: str = Field(description="Keel release.")
    uptime_seconds: float = Field(description="Seconds since this process started.")


class DependencyCheck(Schema):
    status: CheckStatus = Field(description="ok | degraded | down | disabled")
    required: bool = Field(
        description="A required dependency that is down makes the service unavailable (503)."
    )
    latency_ms: float | None = Field(None, description="Round-trip time of the check.")
    detail: str | None = Field(None, description="Why the check is not ok, or extra facts.")


class Readiness(Schema):
    status: OverallStatus = Field(description="ok | degraded (an optional dependency is down) | unavailable")
    version: str = Field(description="Keel release.")
    uptime_seconds: float = Field(description="Seconds since this process started.")
    checks: dict[str, DependencyCheck] = Field(
        description="One entry per dependency: database, migrations, redis, queue, webhooks, "
        "ratelimit, cache."
    )
