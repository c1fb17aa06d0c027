"""The limiter the admission stage calls: a backend, plus what keeps admission fast and safe.

* **Deny cache.** A denial from a shared store is remembered in-process until its known end, so a
  flood costs no store round trips; the attempts it absorbs are handed to the store in the next call
  (at the latest after ``limit`` of them), so abuse bans still trigger. It never allows anything the
  store would refuse.
* **Store down.** Calls to the store go through a circuit breaker. While the store is unreachable a
  fail-open tier is limited by the in-process fallback (per worker: looser, never unlimited) and a
  fail-closed tier refuses with 503. When the store answers again the breaker closes by itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal, NamedTuple

from bastion.core import metrics
from bastion.core.bounded import BoundedTable
from bastion.core.errors import CircuitOpen
from bastion.core.logging import get_logger
from bastion.core.ratelimit.base import Decision, RateLimitBackend, StoreUnavailable, Tier
from bastion.core.ratelimit.memory import MemoryRateLimitBackend
from bastion.core.resilience.breaker import CircuitBreaker

log = get_logger("bastion.ratelimit")
Source = Literal["store", "cache", "fallback", "closed"]


class Verdict(NamedTuple):
    tier: Tier
    decision: Decision | None
    """None when the store is down and the tier fails closed."""
    source: Source


class _Denial:
    __slots__ = ("banned", "skipped", "until")

    def __init__(self, until: float, banned: bool) -> None:
        self.until = until
        self.banned = banned
        self.skipped = 0


def _denial_over(denial: _Denial, now: float) -> bool:
    return denial.until <= now


class Limiter:
    def __init__(
        self,
        backend: RateLimitBackend,
        tiers: dict[str, Tier],
        *,
        deny_cache: bool = True,
        fallback: MemoryRateLimitBackend | None = None,
        breaker: CircuitBreaker | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = 50_000,
    ) -> None:
        self.clock = clock
        self.backend = backend
        self.tiers = tiers
        self.shared = not isinstance(backend, MemoryRateLimitBackend)
        self.deny_cache = deny_cache and self.shared
        self.fallback = fallback or MemoryRateLimitBackend(max_clients=max_clients)
        self.breaker = breaker or CircuitBreaker(
            "ratelimit-store",
            failure_threshold=3,
            reset_timeout=2.0,
            is_failure=lambda exc: isinstance(exc, StoreUnavailable),
        )
        # Denials are a cache of what the store decided: when the table is full of running denials a new
        # one is simply not cached (the store still decides the next request), so nothing is loosened.
        self._denials: BoundedTable[tuple[str, str], _Denial] = BoundedTable(max_clients, forgettable=_denial_over)
        self._counters = {
            (name, outcome): metrics.ratelimit_decisions.labels(name, outcome)
            for name in tiers
            for outcome in ("allowed", "denied", "banned", "fallback", "closed")
        }
        self._bans = {name: metrics.bans_total.labels(name) for name in tiers}

    async def check(self, tier_name: str, key: str) -> Verdict:
        tier = self.tiers[tier_name]
        if not self.shared:  # in-process backend: nothing to cache, nothing that can be down
            decision = await self.backend.hit(key, tier)
            self._observe(tier, key, decision)
            return Verdict(tier, decision, "store")
        now = self.clock()
        extra = 0
        if self.deny_cache:
            slot = (tier_name, key)
            denial = self._denials.get(slot)
            if denial is not None:
                if now < denial.until and (denial.banned or denial.skipped + 1 < tier.limit):
                    denial.skipped += 1
                    remaining = denial.until - now
                    self._count(tier_name, "banned" if denial.banned else "denied")
                    return Verdict(
                        tier, Decision(False, tier.limit, 0, remaining, remaining, banned=denial.banned), "cache"
                    )
                # attempts absorbed while denied still count towards a ban; those while banned do not
                extra = 0 if denial.banned else denial.skipped
                self._denials.pop(slot)

        try:
            self.breaker.before_call()
        except CircuitOpen:
            return await self._degraded(tier, key)
        try:
            decision = await self.backend.hit(key, tier, extra_attempts=extra)
        except StoreUnavailable as exc:
            self.breaker.record_failure()
            log.warning("rate-limit store unavailable", tier=tier_name, error=str(exc))
            return await self._degraded(tier, key)
        except BaseException:
            self.breaker.release_trial()
            raise
        self.breaker.record_success()
        self._observe(tier, key, decision)
        if not decision.allowed and self.deny_cache and decision.retry_after > 0:
            self._denials.put((tier_name, key), _Denial(now + decision.retry_after, decision.banned), now)
        return Verdict(tier, decision, "store")

    def _observe(self, tier: Tier, key: str, decision: Decision) -> None:
        if decision.allowed:
            self._counters[(tier.name, "allowed")].inc()
            return
        if decision.newly_banned:
            self._bans[tier.name].inc()
            log.warning("client banned", tier=tier.name, client=key, seconds=tier.ban_seconds)
        self._count(tier.name, "banned" if decision.banned else "denied")

    async def _degraded(self, tier: Tier, key: str) -> Verdict:
        if tier.fail_closed:
            self._count(tier.name, "closed")
            return Verdict(tier, None, "closed")
        self._count(tier.name, "fallback")
        return Verdict(tier, await self.fallback.hit(key, tier), "fallback")

    def _count(self, tier: str, outcome: str) -> None:
        self._counters[(tier, outcome)].inc()
