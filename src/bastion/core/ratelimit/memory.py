"""In-process rate-limit backend: the embedded default, and the fallback while Redis is down.

Atomic because each ``hit`` runs to completion on the event loop without awaiting in between; it is
per process, so with several workers it limits each worker separately (use Redis to share).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from bastion.core.ratelimit.base import Decision, Tier


class MemoryRateLimitBackend:
    def __init__(self, *, clock: Callable[[], float] = time.time, max_keys: int = 200_000) -> None:
        self.clock = clock
        self.max_keys = max_keys
        self._tat: dict[tuple[str, str], float] = {}
        self._attempts: dict[tuple[str, str], tuple[float, int]] = {}  # (window end, count)
        self._bans: dict[str, float] = {}
        self._hits = 0

    async def hit(self, key: str, tier: Tier, *, extra_attempts: int = 0) -> Decision:
        now = self.clock()
        self._hits += 1
        if self._hits % 10_000 == 0 or len(self._tat) > self.max_keys:
            self._sweep(now)

        ban_until = self._bans.get(key)
        if ban_until is not None:
            if ban_until > now:
                return Decision(False, tier.limit, 0, ban_until - now, ban_until - now, banned=True)
            del self._bans[key]

        slot = (tier.name, key)
        expires, count = self._attempts.get(slot, (0.0, 0))
        if now >= expires:
            expires, count = now + tier.window, 0
        count += 1 + extra_attempts
        self._attempts[slot] = (expires, count)
        if tier.ban_threshold and count >= tier.ban_threshold:
            self._bans[key] = now + tier.ban_seconds
            del self._attempts[slot]
            return Decision(False, tier.limit, 0, tier.ban_seconds, tier.ban_seconds, banned=True, newly_banned=True)

        interval = tier.window / tier.limit
        tat = max(self._tat.get(slot, now), now)
        new_tat = tat + interval
        allow_at = new_tat - tier.window
        # tat accumulates float rounding (ulp ~2e-7 near 1.7e9 s): compare with half a millisecond of slack,
        # as the Redis backend does, or hits at one instant can get limit - 1 and remaining -1
        slack = min(0.0005, interval / 2)
        if allow_at - now > slack:
            return Decision(False, tier.limit, 0, tat - now, allow_at - now)
        self._tat[slot] = new_tat
        remaining = math.floor((tier.window - (new_tat - now) + slack) / interval)
        return Decision(True, tier.limit, remaining, new_tat - now)

    async def unban(self, key: str) -> None:
        self._bans.pop(key, None)

    async def reset(self, key: str, tier: Tier) -> None:
        self._tat.pop((tier.name, key), None)
        self._attempts.pop((tier.name, key), None)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def _sweep(self, now: float) -> None:
        self._tat = {k: v for k, v in self._tat.items() if v > now}
        self._bans = {k: v for k, v in self._bans.items() if v > now}
        self._attempts = {k: v for k, v in self._attempts.items() if v[0] > now}
