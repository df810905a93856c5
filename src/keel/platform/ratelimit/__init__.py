"""Rate limits and quotas: every limit of a request decided at once, all charged or none.

``RedisLimiter`` (one EVALSHA per request, shared by all replicas), ``MemoryLimiter``
(same semantics, one process), ``FallbackLimiter`` (the first, or the second while Redis
is unreachable) and ``rate_limit_headers`` for the response.
"""

from keel.platform.ratelimit.fallback import FallbackLimiter
from keel.platform.ratelimit.headers import rate_limit_headers
from keel.platform.ratelimit.memory import MemoryLimiter
from keel.platform.ratelimit.model import Decision, Limit, Limiter, LimiterUnavailable, Outcome
from keel.platform.ratelimit.redis_limiter import RedisLimiter

__all__ = [
    "Decision",
    "FallbackLimiter",
    "Limit",
    "Limiter",
    "LimiterUnavailable",
    "MemoryLimiter",
    "Outcome",
    "RedisLimiter",
    "rate_limit_headers",
]
