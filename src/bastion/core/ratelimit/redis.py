"""Redis rate-limit backend: ban check, abuse count and GCRA decision in one Lua script, one round trip.

The script takes the time from Redis (``TIME``), so instances with drifting clocks still share one
timeline. All keys of a client carry the same hash tag, so the script also runs on Redis Cluster.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from bastion.core.ratelimit.base import Decision, StoreUnavailable, Tier

# KEYS: ban, tat, attempts.  ARGV: limit, window_ms, ban_threshold, ban_ms, extra_attempts.
# Returns {allowed, remaining, reset_ms, retry_ms, ban_state} with ban_state 0 none, 1 banned, 2 new.
HIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ban = redis.call('PTTL', KEYS[1])
if ban > 0 then return {0, 0, ban, ban, 1} end
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local threshold = tonumber(ARGV[3])
local count = 1 + tonumber(ARGV[5])
local attempts = redis.call('INCRBY', KEYS[3], count)
if attempts == count then redis.call('PEXPIRE', KEYS[3], window) end
if threshold > 0 and attempts >= threshold then
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[4])
  redis.call('DEL', KEYS[3])
  return {0, 0, tonumber(ARGV[4]), tonumber(ARGV[4]), 2}
end
local interval = window / limit
local tat = tonumber(redis.call('GET', KEYS[2])) or now
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - window
-- tat carries rounding error (3 decimals stored, floats near 1.7e12), so compare with slack below the
-- clock's 1 ms resolution: otherwise hits in one millisecond can get limit - 1 and remaining -1
local slack = math.min(0.5, interval / 2)
if allow_at - now > slack then
  return {0, 0, math.ceil(tat - now), math.ceil(allow_at - now), 0}
end
redis.call('SET', KEYS[2], string.format('%.3f', new_tat), 'PX', math.ceil(new_tat - now))
local remaining = math.floor((window - (new_tat - now) + slack) / interval)
return {1, remaining, math.ceil(new_tat - now), 0, 0}
"""

# Any Redis error (down, loading, read-only replica, out of memory) means: no decision from the store.
_UNAVAILABLE = (RedisError, OSError, TimeoutError)


class RedisRateLimitBackend:
    def __init__(self, client: aioredis.Redis, *, prefix: str = "bastion:") -> None:
        self.client = client
        self.prefix = prefix
        self._script = client.register_script(HIT)

    def _keys(self, key: str, tier: str) -> list[str]:
        # the hash tag must not contain braces; percent-encoding them keeps distinct keys distinct
        tag = "{" + key.replace("%", "%25").replace("{", "%7B").replace("}", "%7D") + "}"
        return [f"{self.prefix}ban:{tag}", f"{self.prefix}rl:{tag}:{tier}", f"{self.prefix}rla:{tag}:{tier}"]

    async def hit(self, key: str, tier: Tier, *, extra_attempts: int = 0) -> Decision:
        args = [tier.limit, tier.window * 1000, tier.ban_threshold, tier.ban_seconds * 1000, extra_attempts]
        try:
            result: Any = await self._script(keys=self._keys(key, tier.name), args=args)
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(str(exc)) from exc
        allowed, remaining, reset_ms, retry_ms, ban_state = (int(v) for v in result)
        return Decision(
            allowed=bool(allowed),
            limit=tier.limit,
            remaining=remaining,
            reset_after=reset_ms / 1000.0,
            retry_after=retry_ms / 1000.0,
            banned=ban_state > 0,
            newly_banned=ban_state == 2,
        )

    async def unban(self, key: str) -> None:
        await self.client.delete(self._keys(key, "")[0])

    async def reset(self, key: str, tier: Tier) -> None:
        await self.client.delete(*self._keys(key, tier.name)[1:])

    async def ping(self) -> None:
        try:
            await self.client.ping()
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def close(self) -> None:
        return None  # the client is shared and closed by its owner
