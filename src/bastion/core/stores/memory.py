"""In-process store: the embedded default. Per process; use Redis to share across workers.

Bounded by count (``max_keys``, in a ``core.bounded.BoundedTable``): each write drops at most one expired
key it comes across, so no call ever sweeps the whole store. A key that has not expired is never dropped
to make room: a write of a new key into a store full of live ones raises :class:`StoreUnavailable`, and
the caller applies its policy for a store it cannot use (idempotency and passphrase lockouts refuse with
503), which is never a lockout or a claim forgotten.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from bastion.core.bounded import BoundedTable
from bastion.core.stores.base import StoreUnavailable

_Item = tuple[bytes, float | None]


def _expired(item: _Item, now: float) -> bool:
    return item[1] is not None and item[1] <= now


class MemoryStore:
    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
        prefix: str = "",
        _data: BoundedTable[str, _Item] | None = None,
    ) -> None:
        self.clock = clock
        self.max_keys = max_keys
        self.prefix = prefix
        self._owner = _data is None
        self._data: BoundedTable[str, _Item] = BoundedTable(max_keys, forgettable=_expired) if _data is None else _data

    def namespaced(self, prefix: str) -> MemoryStore:
        return MemoryStore(clock=self.clock, max_keys=self.max_keys, prefix=self.prefix + prefix, _data=self._data)

    def __len__(self) -> int:
        return len(self._data)

    def _live(self, key: str) -> _Item | None:
        key = self.prefix + key
        item = self._data.peek(key)
        if item is not None and item[1] is not None and item[1] <= self.clock():
            self._data.pop(key)
            return None
        return item

    def _put(self, key: str, value: bytes, ttl: float | None) -> None:
        now = self.clock()
        self._data.tidy(now)
        if not self._data.put(self.prefix + key, (bytes(value), None if ttl is None else now + ttl), now):
            raise StoreUnavailable(f"the in-process store is full ({self.max_keys} live keys)")

    async def get(self, key: str) -> bytes | None:
        item = self._live(key)
        return None if item is None else item[0]

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        self._put(key, value, ttl)

    async def set_if_absent(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        if self._live(key) is not None:
            return False
        self._put(key, value, ttl)
        return True

    async def replace(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        if self._live(key) is None:
            return False
        self._put(key, value, ttl)
        return True

    async def delete(self, key: str) -> bool:
        return self._live(key) is not None and self._data.pop(self.prefix + key) is not None

    async def get_and_delete(self, key: str) -> bytes | None:
        item = self._live(key)
        if item is None:
            return None
        self._data.pop(self.prefix + key)
        return item[0]

    async def increment(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        item = self._live(key)
        if item is None:
            value = amount
            self._put(key, str(value).encode(), ttl)
        else:
            value = int(item[0]) + amount
            self._data.put(self.prefix + key, (str(value).encode(), item[1]), self.clock())  # present: never full
        return value

    async def ttl(self, key: str) -> float | None:
        item = self._live(key)
        if item is None or item[1] is None:
            return None
        return max(0.0, item[1] - self.clock())

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        if self._owner:  # a namespaced view shares its owner's data and leaves it alone
            self._data.clear()
