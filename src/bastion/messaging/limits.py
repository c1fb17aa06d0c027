"""WhatsApp's throughput limits, enforced before each send and shared by every worker through the store.

* Per business number: at most ``throughput_per_second`` sends in each one-second window (an atomic
  increment-with-expiry on the key of that second).
* Per recipient (the pair rate): a send claims ``pair:<phone>`` for ``pair_interval_seconds`` with an atomic
  claim-once (``set_if_absent`` with a TTL: Redis ``SET NX PX``). While the claim lives no other worker, in
  any process, can send to that phone, so two sends to one recipient are never closer than the interval;
  the wait until it expires is the store's own TTL.

``acquire`` answers 0.0 (go) or the seconds to wait; a caller that is told to wait sends nothing.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from bastion.core.stores.base import Store


class Limits:
    def __init__(
        self,
        store: Store,
        *,
        number_id: str,
        per_second: int,
        pair_interval: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.number_id = number_id
        self.per_second = per_second
        self.pair_interval = pair_interval
        self.clock = clock

    async def acquire(self, phone: str) -> float:
        """0.0 when a send to ``phone`` may go now (its pair claim taken), else the seconds to wait."""
        now = self.clock()
        second = math.floor(now)
        used = await self.store.increment(f"tp:{self.number_id}:{second}", 1, ttl=2.0)
        if used > self.per_second:
            return max(0.001, second + 1 - now)
        if self.pair_interval <= 0:
            return 0.0
        if await self.store.set_if_absent(f"pair:{phone}", b"1", ttl=self.pair_interval):
            return 0.0
        left = await self.store.ttl(f"pair:{phone}")
        return max(0.001, left if left is not None else self.pair_interval)
