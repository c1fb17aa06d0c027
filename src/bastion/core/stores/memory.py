"""In-process store: the embedded default. Per process; use Redis to share across workers."""

from __future__ import annotations

import time
from collections.abc import Callable


class MemoryStore:
    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 1_000_000,
        prefix: str = "",
        _data: dict[str, tuple[bytes, float | None]] | None = None,
    ) -> None:
        self.clock = clock
        self.max_keys = max_keys
        self.prefix = prefix
        self._owner = _data is None
        self._data: dict[str, tuple[bytes, float | None]] = {} if _data is None else _data
        self._ops = 0

    def namespaced(self, prefix: str) -> MemoryStore:
        return MemoryStore(clock=self.clock, max_keys=self.max_keys, prefix=self.prefix + prefix, _data=self._data)

    def _live(self, key: str) -> tuple[bytes, float | None] | None:
        key = self.prefix + key
        item = self._data.get(key)
        if item is not None and item[1] is not None and item[1] <= self.clock():
            del self._data[key]
            return None
        return item

    def _put(self, key: str, value: bytes, ttl: float | None) -> None:
        self._ops += 1
        if self._ops % 10_000 == 0 or len(self._data) >= self.max_keys:
            self.sweep()
        self._data[self.prefix + key] = (bytes(value), None if ttl is None else self.clock() + ttl)

    def sweep(self) -> int:
        """Drop expired keys; returns how many."""
        now = self.clock()
        dead = [k for k, (_, exp) in self._data.items() if exp is not None and exp <= now]
        for key in dead:
            del self._data[key]
        return len(dead)

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
        return self._live(key) is not None and self._data.pop(self.prefix + key, None) is not None

    async def get_and_delete(self, key: str) -> bytes | None:
        item = self._live(key)
        if item is None:
            return None
        del self._data[self.prefix + key]
        return item[0]

    async def increment(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        item = self._live(key)
        if item is None:
            value = amount
            self._put(key, str(value).encode(), ttl)
        else:
            value = int(item[0]) + amount
            self._data[self.prefix + key] = (str(value).encode(), item[1])
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
