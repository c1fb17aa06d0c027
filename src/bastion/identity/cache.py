"""In-process cache of verified credentials, with tag invalidation that is exact under races.

Each entry (credential → principal, or → a refusal for a known-bad one) carries tags: ``k:<key id>``,
``u:<user id>``, ``s:<session id>``. ``invalidate(tags)`` records when each tag was invalidated; an entry
created *before* that moment is stale. The creation time is taken before the database read that built the
entry, so a read that overlaps a revocation can never cache the pre-revocation answer. A counter of
invalidations lets the common case (nothing invalidated since the entry was checked) skip the tag checks:
a hit costs one dict lookup and two comparisons.

Entries live at most ``ttl`` seconds (the safety net for a missed invalidation message) and never past the
credential's own expiry; the cache is bounded and evicts its oldest entries first. An entry that is about
to reach its TTL (not its credential's expiry) is ``due``: the resolver re-reads it in the background while
it is still served, so a busy credential never makes all its concurrent requests wait on the database.

When the database does not answer, an entry that ended by its TTL less than ``stale_for`` seconds ago is
still the last known answer: :meth:`stale` gives it to the resolver (never one past its credential's own
expiry, never one a tag invalidated: a revocation arrives on the bus, not from the database, so it still
applies, and a gap in the bus clears everything).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from bastion.core.errors import AppError
from bastion.core.principal import Principal

_NEVER = float("-inf")
Refusal = Callable[[], AppError]
"""Makes the error a refused credential is answered with (a fresh instance per request)."""


class Entry:
    __slots__ = ("created", "epoch", "expires", "principal", "refusal", "renewable", "tags")

    def __init__(
        self,
        principal: Principal | None,
        refusal: Refusal | None,
        tags: tuple[str, ...],
        created: float,
        expires: float,
        epoch: int,
        renewable: bool,
    ) -> None:
        self.principal = principal
        self.refusal = refusal
        self.tags = tags
        self.created = created
        self.expires = expires
        self.epoch = epoch
        self.renewable = renewable
        """Its end is the cache TTL, not the credential's expiry: worth re-reading before it ends."""


class CredentialCache:
    def __init__(
        self, *, ttl: float, max_entries: int, clock: Callable[[], float] = time.monotonic, stale_for: float = 0.0
    ) -> None:
        self.ttl = ttl
        self.stale_for = stale_for
        self.max_entries = max_entries
        self.clock = clock
        self.epoch = 0
        self.renew_window = min(2.0, ttl / 5)
        self._entries: dict[bytes, Entry] = {}
        self._invalidated: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: bytes, now: float) -> Entry | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires <= now:
            if not entry.renewable or entry.expires + self.stale_for <= now:
                del self._entries[key]
            return None  # kept (renewable, recently ended) only as the last known answer: see stale()
        if entry.epoch != self.epoch:
            if any(self._invalidated.get(tag, _NEVER) >= entry.created for tag in entry.tags):
                del self._entries[key]
                return None
            entry.epoch = self.epoch
        return entry

    def put(
        self,
        key: bytes,
        principal: Principal | None,
        *,
        tags: Iterable[str] = (),
        created: float,
        lifetime: float | None = None,
        refusal: Refusal | None = None,
    ) -> None:
        """Cache an answer obtained from a read that started at ``created``; it lives ``min(ttl, lifetime)``."""
        tags = tuple(tags)
        if any(self._invalidated.get(tag, _NEVER) >= created for tag in tags):
            return  # invalidated while the read was in flight: the answer may already be stale
        if len(self._entries) >= self.max_entries:
            for old in list(self._entries)[: max(1, self.max_entries // 10)]:
                del self._entries[old]
        renewable = lifetime is None or lifetime > self.ttl
        ttl = self.ttl if renewable or lifetime is None else lifetime
        self._entries[key] = Entry(principal, refusal, tags, created, created + ttl, self.epoch, renewable)

    def stale(self, key: bytes, now: float) -> Entry | None:
        """The last known answer for ``key`` while the database does not answer: an entry that ended by its TTL
        (not its credential's expiry) within ``stale_for`` seconds and that no invalidation has touched."""
        entry = self._entries.get(key)
        if entry is None or not entry.renewable or not entry.expires <= now < entry.expires + self.stale_for:
            return None
        if any(self._invalidated.get(tag, _NEVER) >= entry.created for tag in entry.tags):
            del self._entries[key]
            return None
        return entry

    def due(self, entry: Entry, now: float) -> bool:
        """The entry ends within ``renew_window`` by the TTL alone: time to re-read it in the background."""
        return entry.renewable and entry.expires - now < self.renew_window

    def invalidate(self, tags: Iterable[str]) -> None:
        now = self.clock()
        for tag in tags:
            self._invalidated[tag] = now
        self.epoch += 1
        if len(self._invalidated) > 4 * self.max_entries:
            # Marks older than ``ttl`` can no longer match a live entry (all were created after them).
            horizon = now - self.ttl
            self._invalidated = {t: at for t, at in self._invalidated.items() if at >= horizon}

    def clear(self) -> None:
        """Forget everything (after a gap in the invalidation stream, when messages may have been missed)."""
        self._entries.clear()
        self.epoch += 1
