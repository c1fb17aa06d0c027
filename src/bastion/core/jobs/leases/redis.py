"""Redis leases: a key per lease holding its holder's id, expiring with the lease (Redis's own clock decides,
so the instances' clocks need not agree). Each operation is one Lua script, atomic in Redis."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from bastion.core.stores.base import StoreUnavailable

T = TypeVar("T")

# Take the key when it is free or already ours (then the new expiry renews it).
_ACQUIRE = """
local current = redis.call('GET', KEYS[1])
if current == false or current == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""

# Delete the key only while it is ours: a lease that expired and was taken over stays with its new holder.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class RedisLeases:
    def __init__(self, client: aioredis.Redis, *, prefix: str = "bastion:") -> None:
        self.client = client
        self.prefix = prefix + "lease:"
        self._acquire = client.register_script(_ACQUIRE)
        self._release = client.register_script(_RELEASE)

    async def acquire(self, name: str, holder: str, ttl: float) -> bool:
        ms = max(1, int(ttl * 1000))
        return bool(await _call(lambda: self._acquire(keys=[self.prefix + name], args=[holder, ms])))

    async def release(self, name: str, holder: str) -> bool:
        return bool(await _call(lambda: self._release(keys=[self.prefix + name], args=[holder])))


async def _call(fn: Callable[[], Awaitable[T]]) -> T:
    try:
        return await fn()
    except (RedisError, OSError, TimeoutError) as exc:
        raise StoreUnavailable(str(exc)) from exc
