"""In-process leases: one worker only (tests, and an embedded app that runs a single worker)."""

from __future__ import annotations

import time
from collections.abc import Callable


class MemoryLeases:
    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._held: dict[str, tuple[str, float]] = {}

    # Neither method awaits between its read and its write, so each is atomic on the event loop.

    async def acquire(self, name: str, holder: str, ttl: float) -> bool:
        now = self.clock()
        current = self._held.get(name)
        if current is not None and current[0] != holder and current[1] > now:
            return False
        self._held[name] = (holder, now + ttl)
        return True

    async def release(self, name: str, holder: str) -> bool:
        current = self._held.get(name)
        if current is None or current[0] != holder or current[1] <= self.clock():
            return False
        del self._held[name]
        return True
