"""A table with a hard cap by count that forgets only what may be forgotten.

    table: BoundedTable[str, float] = BoundedTable(100_000, forgettable=lambda until, now: until <= now)
    until = table.get(key)                      # a hit: the entry becomes the most recently seen
    if not table.put(key, now + 60, now):       # False: full, and every entry tried still matters
        ...                                     # refuse, or keep the state somewhere coarser

Every per-client structure in a worker (rate-limit states, bans, caches) sits in one of these, so
memory is bounded by count whatever the arrival rate of new clients. It is an ``OrderedDict`` in
least-recently-seen order: a hit moves the entry to the end in O(1), and making room pops from the
front in O(1), so no decision ever rebuilds or scans the table (a sweep of the whole dict every N
calls costs tens of milliseconds at a million entries, on the request that pays for it).

Making room: up to ``probe`` entries are taken from the front; one that is ``forgettable`` (its state
is the same as having none, e.g. a rate-limit state whose quota is full again) is dropped and its
slot reused; one that is not is put back at the end, like the CLOCK algorithm's second chance, so a
long-lived entry does not block the cheap ones behind it. When none of them may go, ``put`` returns
False and the caller decides (refuse, or aggregate): the table never forgets live state to make room.
Having found nothing, it does not probe again for ``recheck`` seconds (a full table under a flood would
otherwise pay the probes on every refused insert); that only refuses more, never forgets more.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def _always(_value: object, _now: float) -> bool:
    return True


class BoundedTable(Generic[K, V]):
    __slots__ = ("_data", "_full_until", "forgettable", "max_items", "peek", "probe", "recheck")

    def __init__(
        self,
        max_items: int,
        *,
        forgettable: Callable[[V, float], bool] = _always,
        probe: int = 4,
        recheck: float = 0.01,
    ) -> None:
        if max_items < 1:
            raise ValueError("max_items must be at least 1")
        self.max_items = max_items
        self.forgettable = forgettable
        self.probe = probe
        self.recheck = recheck
        self._full_until = float("-inf")
        self._data: OrderedDict[K, V] = OrderedDict()
        self.peek: Callable[[K], V | None] = self._data.get
        """The value, leaving the order alone (the dict's own ``get``: no Python frame on a hot path)."""

    def __len__(self) -> int:
        return len(self._data)

    def __bool__(self) -> bool:
        return bool(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __iter__(self) -> Iterator[K]:
        return iter(self._data)

    def get(self, key: K) -> V | None:
        """The value, marking the entry as just seen."""
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def full(self, now: float) -> bool:
        """A ``put`` of a new key would be refused now without looking (full, and probed in vain within
        ``recheck``): lets a caller skip building the value."""
        return len(self._data) >= self.max_items and now < self._full_until

    def put(self, key: K, value: V, now: float) -> bool:
        """Store ``value`` as the most recently seen; False (and nothing stored) when the table is full
        and none of the entries tried may be forgotten."""
        data = self._data
        if key in data:
            data[key] = value
            data.move_to_end(key)
            return True
        if len(data) >= self.max_items and (now < self._full_until or not self._make_room(now)):
            return False
        data[key] = value
        return True

    def pop(self, key: K) -> V | None:
        return self._data.pop(key, None)

    def clear(self) -> None:
        self._data.clear()

    def tidy(self, now: float) -> None:
        """Look at the least recently seen entry: drop it if it may be forgotten, else move it to the end.
        Called on each write by a table whose entries expire, it keeps dead entries from piling up to the
        cap, one O(1) step at a time instead of a sweep of the whole table."""
        data = self._data
        if data:
            key, value = data.popitem(last=False)
            if not self.forgettable(value, now):
                data[key] = value

    def oldest(self) -> V | None:
        """The least recently seen value (to tell a refused caller when room may appear)."""
        for key in self._data:
            return self._data[key]
        return None

    def _make_room(self, now: float) -> bool:
        data = self._data
        for _ in range(min(self.probe, len(data))):
            key, value = data.popitem(last=False)
            if self.forgettable(value, now):
                return True
            data[key] = value  # still matters: second chance at the end
        self._full_until = now + self.recheck
        return False
