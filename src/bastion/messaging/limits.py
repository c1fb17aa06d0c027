"""WhatsApp's throughput limits, enforced before each send and shared by every worker through the store.

* Per business number: at most ``throughput_per_second`` sends in each one-second window (an atomic
  increment-with-expiry on the key of that second).
* Per recipient (the pair rate): a send claims ``pair:<phone>`` with an atomic claim-once (``set_if_absent``
  with a TTL: Redis ``SET NX PX``), held for the whole call (``hold`` seconds at most), and when the call is
  over (answered or failed) the claim is set to expire ``pair_interval_seconds`` later (:meth:`Limits.done`).
  No other worker, in any process, can send to that phone while the claim lives, so the next request leaves
  at least the interval after this one's answer came back, hence arrives at least the interval after this
  one arrived: the gap holds where Meta measures it, whatever the network's jitter. A call that never
  happened gives the claim back at once (:meth:`Limits.release`).

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
        hold: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.number_id = number_id
        self.per_second = per_second
        self.pair_interval = pair_interval
        self.hold = hold
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
        if await self.store.set_if_absent(f"pair:{phone}", b"1", ttl=self.pair_interval + self.hold):
            return 0.0
        left = await self.store.ttl(f"pair:{phone}")
        return max(0.001, left if left is not None else self.pair_interval)

    async def done(self, phone: str) -> None:
        """The call to ``phone`` is over: the next may start ``pair_interval`` from now."""
        if self.pair_interval > 0:
            await self.store.set(f"pair:{phone}", b"1", ttl=self.pair_interval)

    async def release(self, phone: str) -> None:
        """No call was made after all (another worker had the message): give the claim back."""
        if self.pair_interval > 0:
            await self.store.delete(f"pair:{phone}")
