"""Rate limits and abuse bans: tiers, a GCRA decision per request, memory and Redis backends.

The Redis backend is imported on first use, so a worker without Redis never loads redis-py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bastion.core.ratelimit.base import Decision, RateLimitBackend, StoreUnavailable, Tier
from bastion.core.ratelimit.limiter import Limiter, Verdict
from bastion.core.ratelimit.memory import MemoryRateLimitBackend

if TYPE_CHECKING:
    from bastion.core.ratelimit.redis import RedisRateLimitBackend

__all__ = [
    "Decision",
    "Limiter",
    "MemoryRateLimitBackend",
    "RateLimitBackend",
    "RedisRateLimitBackend",
    "StoreUnavailable",
    "Tier",
    "Verdict",
]


def __getattr__(name: str) -> Any:
    if name == "RedisRateLimitBackend":
        from bastion.core.ratelimit.redis import RedisRateLimitBackend

        return RedisRateLimitBackend
    raise AttributeError(name)
