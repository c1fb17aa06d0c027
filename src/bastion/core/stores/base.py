"""The fast key-value store: one protocol, a memory and a Redis backend, atomic operations as methods.

Each backend makes its operations atomic itself (one Redis command or script; in memory, a method
that never awaits between its read and its write), so callers never need a lock of their own::

    store = MemoryStore()                                   # or RedisStore(client, prefix="bastion:")
    if await store.set_if_absent("claim:abc", b"1", ttl=60):   # exactly one caller wins
        ...
    hits = await store.increment("hits:1.2.3.4", ttl=60)      # the expiry is set by the first hit
    token = await store.get_and_delete("nonce:xyz")           # read-once

``ttl`` is in seconds; ``None`` keeps the value until deleted. Keys are namespaced by the store's
prefix; ``namespaced`` gives a view with a longer one (Litestar's ``with_namespace``), which is how each
module gets a store of its own keys (``ModuleContext.store``)::

    secrets_store = store.namespaced("secrets:")            # "lock:x" is "bastion:secrets:lock:x" in Redis

Backends raise :class:`StoreUnavailable` when they cannot be reached.
"""

from __future__ import annotations

from typing import Protocol


class StoreUnavailable(Exception):
    """The store could not be reached; callers decide whether to fail open or closed."""


class Store(Protocol):
    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None: ...

    async def set_if_absent(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        """Store ``value`` only if ``key`` is missing; True if this call stored it (claim-once)."""

    async def replace(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        """Store ``value`` only if ``key`` exists; True if it did."""

    async def delete(self, key: str) -> bool:
        """Remove ``key``; True if it existed."""

    async def get_and_delete(self, key: str) -> bytes | None:
        """Return the value and remove it in one step; of concurrent callers only one gets it."""

    async def increment(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        """Add ``amount`` and return the new value; a new key starts at 0 and gets ``ttl``."""

    async def ttl(self, key: str) -> float | None:
        """Seconds ``key`` has left; None if it does not exist or never expires."""

    def namespaced(self, prefix: str) -> Store:
        """A view of this store whose keys all start with ``prefix``: same connection, same data."""

    async def ping(self) -> None: ...

    async def close(self) -> None:
        """Release what this store owns (a view owns nothing: closing it leaves the shared data alone)."""
