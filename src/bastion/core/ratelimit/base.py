"""The rate-limit family: tiers, decisions, and the backend protocol every store implements.

The algorithm is GCRA (the generic cell rate algorithm, as in redis-cell and Stripe's limiter): one
timestamp per client and tier, a burst of up to ``limit`` requests, then one every
``window / limit`` seconds. It gives exact ``remaining``, ``reset`` and ``retry-after`` values and
never lets a window boundary double a burst, which fixed windows do.

Every attempt also counts towards an abuse counter per client (a fixed window of the tier's
length); reaching ``ban_threshold`` attempts (the limit times ``ban_multiplier``) bans the client for
``ban_seconds``. The ban check, the abuse count and the limit decision are one atomic operation of
the backend (one Lua script on Redis), so they hold across workers and instances.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from bastion.core.stores.base import StoreUnavailable

__all__ = ["Decision", "RateLimitBackend", "StoreUnavailable", "Tier"]


@dataclass(frozen=True, slots=True)
class Tier:
    name: str
    limit: int
    window: int
    ban_threshold: int = 0
    ban_seconds: int = 86_400
    fail_closed: bool = False

    @property
    def policy_header(self) -> bytes:
        return f'"{self.name}";q={self.limit};w={self.window}'.encode()


class Decision:
    """The answer for one request. (A plain slotted class: one is made per request.)"""

    __slots__ = ("allowed", "banned", "limit", "newly_banned", "remaining", "reset_after", "retry_after")

    def __init__(
        self,
        allowed: bool,
        limit: int,
        remaining: int,
        reset_after: float,
        retry_after: float = 0.0,
        banned: bool = False,
        newly_banned: bool = False,
    ) -> None:
        self.allowed = allowed
        self.limit = limit
        self.remaining = remaining
        self.reset_after = reset_after
        """Seconds until the whole quota is available again."""
        self.retry_after = retry_after
        """Seconds until the next request would be allowed (0 when allowed); for a ban, until it ends."""
        self.banned = banned
        self.newly_banned = newly_banned

    def __repr__(self) -> str:
        return (
            f"Decision(allowed={self.allowed}, remaining={self.remaining}, reset_after={self.reset_after:.3f}, "
            f"retry_after={self.retry_after:.3f}, banned={self.banned})"
        )


class RateLimitBackend(Protocol):
    async def hit(self, key: str, tier: Tier, *, extra_attempts: int = 0) -> Decision:
        """Check the ban, count the attempt (plus ``extra_attempts`` seen but not yet counted) and
        decide, atomically. Raises :class:`StoreUnavailable` when the store cannot be reached."""

    async def unban(self, key: str) -> None: ...

    async def reset(self, key: str, tier: Tier) -> None: ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...
