"""Redis store: each operation is one command (SET NX/XX, GETDEL) or one script (increment-with-expiry)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar, cast

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from bastion.core.stores.base import StoreUnavailable

T = TypeVar("T")

# INCRBY and set the expiry only when the key was created by this call, atomically.
_INCREMENT = """
local created = redis.call('EXISTS', KEYS[1]) == 0
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
if created and tonumber(ARGV[2]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return v
"""


def _ms(ttl: float | None) -> int | None:
    return None if ttl is None else max(1, int(ttl * 1000))


class RedisStore:
    def __init__(self, client: aioredis.Redis, *, prefix: str = "bastion:") -> None:
        self.client = client
        self.prefix = prefix
        self._increment = client.register_script(_INCREMENT)

    def k(self, key: str) -> str:
        return self.prefix + key

    async def _call(self, fn: Callable[[], Awaitable[T]]) -> T:
        try:
            return await fn()
        except ResponseError as exc:
            # A command the data cannot take (incrementing text, a key of another type) is our bug, not an
            # outage; READONLY, OOM and the like are operational and reported as unavailability.
            if any(marker in str(exc) for marker in ("WRONGTYPE", "not an integer", "out of range")):
                raise ValueError(str(exc)) from exc
            raise StoreUnavailable(str(exc)) from exc
        except (RedisError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def get(self, key: str) -> bytes | None:
        return cast("bytes | None", await self._call(lambda: self.client.get(self.k(key))))

    async def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        await self._call(lambda: self.client.set(self.k(key), value, px=_ms(ttl)))

    async def set_if_absent(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        done = await self._call(lambda: self.client.set(self.k(key), value, px=_ms(ttl), nx=True))
        return bool(done)

    async def replace(self, key: str, value: bytes, ttl: float | None = None) -> bool:
        done = await self._call(lambda: self.client.set(self.k(key), value, px=_ms(ttl), xx=True))
        return bool(done)

    async def delete(self, key: str) -> bool:
        return bool(await self._call(lambda: self.client.delete(self.k(key))))

    async def get_and_delete(self, key: str) -> bytes | None:
        return cast("bytes | None", await self._call(lambda: self.client.getdel(self.k(key))))

    async def increment(self, key: str, amount: int = 1, ttl: float | None = None) -> int:
        value = await self._call(lambda: self._increment(keys=[self.k(key)], args=[amount, _ms(ttl) or 0]))
        return int(value)

    async def ttl(self, key: str) -> float | None:
        ms = int(await self._call(lambda: self.client.pttl(self.k(key))))
        return None if ms < 0 else ms / 1000.0

    def namespaced(self, prefix: str) -> RedisStore:
        return RedisStore(self.client, prefix=self.prefix + prefix)

    async def ping(self) -> None:
        await self._call(lambda: self.client.ping())

    async def close(self) -> None:
        return None  # the client is shared and closed by its owner


def connect(url: str, *, timeout: float, max_connections: int = 256) -> aioredis.Redis:
    """A pooled Redis client with explicit timeouts and one quick retry (for a connection the server
    closed while it sat idle in the pool)."""
    from redis.asyncio.connection import BlockingConnectionPool
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    # A blocking pool: a burst of more concurrent commands than connections waits (up to ``timeout``)
    # for a free one instead of failing with "Too many connections", which would look like an outage.
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        health_check_interval=15,
        retry=Retry(NoBackoff(), retries=1),
    )
    return aioredis.Redis(connection_pool=pool)
