"""What the request-statistics tests share: a clock to record at, and routes of their own."""

from __future__ import annotations

import uuid
from datetime import datetime


class Clock:
    """``RequestStats``' clock, standing at ``at`` until moved."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> float:
        return self.at.timestamp()


def a_route(prefix: str = "/test") -> str:
    """A route no other test records (the run's database and Redis are shared)."""
    return f"{prefix}/{uuid.uuid4().hex}"
