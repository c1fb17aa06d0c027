"""Fast key-value stores behind one protocol: memory (embedded default) and Redis.

The Redis backend is imported on first use, so a worker without Redis never loads redis-py (~13 MB).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bastion.core.stores.base import Store, StoreUnavailable
from bastion.core.stores.memory import MemoryStore

if TYPE_CHECKING:
    from bastion.core.stores.redis import RedisStore

__all__ = ["MemoryStore", "RedisStore", "Store", "StoreUnavailable"]


def __getattr__(name: str) -> Any:
    if name == "RedisStore":
        from bastion.core.stores.redis import RedisStore

        return RedisStore
    raise AttributeError(name)
