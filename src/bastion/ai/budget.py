"""Token budgets per caller, counted in the module's shared store."""

from __future__ import annotations

from bastion.ai.errors import TokenBudgetExceeded
from bastion.core.logging import get_logger
from bastion.core.stores.base import Store, StoreUnavailable

log = get_logger("bastion.ai")


class TokenBudget:
    """Tokens per minute and per day per caller, in the shared store (so every instance sees one count).

    Checked before a call, charged with the upstream's usage after it: concurrent calls of one caller
    may together overshoot by what they use, never more (tokens are only known afterwards). While the
    store is down, calls are let through (the ``ai`` rate-limit tier still applies).
    """

    def __init__(self, store: Store, *, per_minute: int | None, per_day: int | None) -> None:
        self.store = store
        self.windows = [
            (prefix, seconds, limit)
            for prefix, seconds, limit in (("tpm:", 60, per_minute), ("tpd:", 86_400, per_day))
            if limit is not None
        ]

    @property
    def enabled(self) -> bool:
        return bool(self.windows)

    async def check(self, who: str) -> None:
        try:
            for prefix, _seconds, limit in self.windows:
                used = await self.store.get(prefix + who)
                if used is not None and int(used) >= limit:
                    left = await self.store.ttl(prefix + who)
                    raise TokenBudgetExceeded(
                        f"The budget of {limit} tokens per {'minute' if prefix == 'tpm:' else 'day'} is used up.",
                        retry_after=left if left else 1,
                        extra={"limit": limit},
                    )
        except StoreUnavailable as exc:
            log.warning("token budget store unavailable; allowing the call", error=str(exc))

    async def charge(self, who: str, tokens: int) -> None:
        try:
            for prefix, seconds, _limit in self.windows:
                await self.store.increment(prefix + who, tokens, ttl=seconds)
        except StoreUnavailable as exc:
            log.warning("token budget store unavailable; usage not counted", error=str(exc), tokens=tokens)
