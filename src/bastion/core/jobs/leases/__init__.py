"""Leases: one holder at a time per name, across workers and instances, until it releases or its TTL runs out.

    leases = leases_for(platform)          # Redis when BASTION_REDIS_URL is set, else the SQL database
    if await leases.acquire("secrets.purge", holder="host:4242:9f1c", ttl=30.0):   # also renews
        ...
    await leases.release("secrets.purge", holder="host:4242:9f1c")

The Redis and SQL backends are imported on first use, so a worker loads only the one it needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bastion.core.jobs.leases.base import Leases
from bastion.core.jobs.leases.memory import MemoryLeases

if TYPE_CHECKING:
    from bastion.core.platform import Platform

__all__ = ["Leases", "MemoryLeases", "leases_for"]


def leases_for(platform: Platform) -> Leases:
    """Redis when the platform has it (one round trip, already shared by every worker), else the SQL database,
    which every worker of an app shares too (one SQLite file, or PostgreSQL for several instances)."""
    if platform.redis is not None:
        from bastion.core.jobs.leases.redis import RedisLeases

        return RedisLeases(platform.redis, prefix=platform.settings.redis_prefix)
    from bastion.core.jobs.leases.sql import SqlLeases

    return SqlLeases(platform.db)
