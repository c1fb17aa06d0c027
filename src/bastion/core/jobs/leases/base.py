"""The lease protocol: named, exclusive, expiring, renewable by its holder.

Each backend makes ``acquire`` and ``release`` atomic itself (a lock-free method in memory, a Lua script on
Redis, a conditional upsert on SQL): of any number of concurrent callers at most one holds a name at a time.
Callers never add a lock of their own.
"""

from __future__ import annotations

from typing import Protocol


class Leases(Protocol):
    async def acquire(self, name: str, holder: str, ttl: float) -> bool:
        """Hold ``name`` for ``ttl`` seconds from now: True if it was free, expired or already ``holder``'s
        (then this renews it), False while another holder's lease runs."""

    async def release(self, name: str, holder: str) -> bool:
        """Give ``name`` up, only if ``holder`` holds it; True if it did."""
