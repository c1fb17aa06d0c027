"""Redis backend: every operation is one Lua script (or one read), secrets expire by native TTL.

Keys (all carry the hash tag ``{secrets}``, so the scripts also run on Redis Cluster, on one shard)::

    s:<id>    hash: ct (ciphertext), v (views left), mv, e (expires ms), cr (created ms), h (passphrase
              hash or ""), c ("1": browser-encrypted), q (its quota key); PEXPIREAT e
    r:<id>    the receipt (msgpack) for the creator, kept until e + audit retention
    l:<id>    the audit events (list of msgpack), kept as long
    x, b, t   byte accounting: zset id -> expiry, hash id -> size, total; for the total-bytes cap
    q:<key>   zset id -> expiry of the live secrets counted against one creator (cap, owner listing)

The claim script checks views and expiry and decrements in one step, so concurrent claims cannot both
take the last view; the last view deletes ``s:<id>``. Bytes of a secret that was viewed or burned are
given back at once; those of expired secrets when the next create or purge trims the expiry index.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from bastion.core.stores.base import StoreUnavailable
from bastion.secrets.backends.base import Claim, Event, EventKind, Limits, LiveSecret, NewSecret, Receipt, Refusal
from bastion.secrets.errors import LiveLimitReached, StorageFull

T = TypeVar("T")

_LIB = """
local function release(s, id, x, b, t)
  local q = redis.call('HGET', s, 'q')
  if q then redis.call('ZREM', q, id) end
  local size = redis.call('HGET', b, id)
  if size then
    redis.call('DECRBY', t, size)
    redis.call('HDEL', b, id)
  end
  redis.call('ZREM', x, id)
  redis.call('DEL', s)
end
local function trim(x, b, t, now, batch)
  local dead = redis.call('ZRANGEBYSCORE', x, '-inf', now, 'LIMIT', 0, batch)
  for _, id in ipairs(dead) do
    local size = redis.call('HGET', b, id)
    if size then
      redis.call('DECRBY', t, size)
      redis.call('HDEL', b, id)
    end
    redis.call('ZREM', x, id)
  end
  return #dead
end
"""

# KEYS: s, r, l, x, b, t, q.  ARGV: id, now, expires, size, max_total, max_live, ct, views, hash,
# client_encrypted, receipt, event, keep_until, created.  Returns 1, or -1 full, -2 cap, -3 id taken.
_CREATE = (
    _LIB
    + """
trim(KEYS[4], KEYS[5], KEYS[6], ARGV[2], 200)
local size = tonumber(ARGV[4])
if tonumber(redis.call('GET', KEYS[6]) or '0') + size > tonumber(ARGV[5]) then return -1 end
redis.call('ZREMRANGEBYSCORE', KEYS[7], '-inf', ARGV[2])
if redis.call('ZCARD', KEYS[7]) >= tonumber(ARGV[6]) then return -2 end
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[2]) == 1 then return -3 end
redis.call('HSET', KEYS[1], 'ct', ARGV[7], 'v', ARGV[8], 'mv', ARGV[8], 'e', ARGV[3], 'cr', ARGV[14],
           'h', ARGV[9], 'c', ARGV[10], 'q', KEYS[7])
redis.call('PEXPIREAT', KEYS[1], ARGV[3])
redis.call('SET', KEYS[2], ARGV[11], 'PXAT', ARGV[13])
redis.call('RPUSH', KEYS[3], ARGV[12])
redis.call('PEXPIREAT', KEYS[3], ARGV[13])
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[1])
redis.call('HSET', KEYS[5], ARGV[1], size)
redis.call('INCRBY', KEYS[6], size)
redis.call('ZADD', KEYS[7], ARGV[3], ARGV[1])
local last = redis.call('ZRANGE', KEYS[7], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[7], last[2])
return 1
"""
)

# KEYS: s, l, x, b, t.  ARGV: id, now, event, passphrase_checked.
# Returns 0 gone, 1 needs the passphrase (nothing consumed), or {ciphertext, views left, client_encrypted}.
_CLAIM = (
    _LIB
    + """
local h = redis.call('HMGET', KEYS[1], 'v', 'e', 'h', 'ct', 'c')
if not h[1] then return 0 end
local v = tonumber(h[1])
if v <= 0 or tonumber(h[2]) <= tonumber(ARGV[2]) then return 0 end
if ARGV[4] ~= '1' and h[3] ~= '' then return 1 end
v = v - 1
if v == 0 then
  release(KEYS[1], ARGV[1], KEYS[3], KEYS[4], KEYS[5])
else
  redis.call('HSET', KEYS[1], 'v', v)
end
redis.call('RPUSH', KEYS[2], ARGV[3])
return {h[4], v, h[5]}
"""
)

# KEYS: s, l, x, b, t.  ARGV: id, now, event.  Returns 1 if the secret was live.
_BURN = (
    _LIB
    + """
local e = redis.call('HGET', KEYS[1], 'e')
if not e or tonumber(e) <= tonumber(ARGV[2]) then return 0 end
release(KEYS[1], ARGV[1], KEYS[3], KEYS[4], KEYS[5])
redis.call('RPUSH', KEYS[2], ARGV[3])
return 1
"""
)

# KEYS: x, b, t.  ARGV: now, batch.
_TRIM = _LIB + "return trim(KEYS[1], KEYS[2], KEYS[3], ARGV[1], tonumber(ARGV[2]))"
_FIELDS = ("v", "e", "cr", "mv", "c", "h")


class _Receipt(msgspec.Struct, array_like=True):
    created_at_ms: int
    expires_at_ms: int
    max_views: int
    owner_id: str | None
    delete_token_hash: bytes
    client_encrypted: bool
    requires_passphrase: bool


_encode = msgspec.msgpack.Encoder().encode
_decode_receipt = msgspec.msgpack.Decoder(_Receipt).decode
_decode_event = msgspec.msgpack.Decoder(tuple[EventKind, int, str | None]).decode


def _event(kind: EventKind, at_ms: int, client: str | None) -> bytes:
    return _encode((kind, at_ms, client))


class RedisBackend:
    name = "redis"

    def __init__(self, client: aioredis.Redis, *, prefix: str = "bastion:", retention_ms: int = 0) -> None:
        self.client = client
        self.retention_ms = retention_ms
        """The receipt and the events are kept this long after the secret expires."""
        self.base = prefix + "{secrets}:"
        self._create = client.register_script(_CREATE)
        self._claim = client.register_script(_CLAIM)
        self._burn = client.register_script(_BURN)
        self._trim = client.register_script(_TRIM)
        self._accounting = [self.base + "x", self.base + "b", self.base + "t"]

    async def _call(self, fn: Callable[[], Awaitable[T]]) -> T:
        try:
            return await fn()
        except (RedisError, OSError, TimeoutError) as exc:
            raise StoreUnavailable(str(exc)) from exc

    def _keys(self, secret_id: str) -> list[str]:
        return [self.base + "s:" + secret_id, self.base + "l:" + secret_id, *self._accounting]

    async def create(self, secret: NewSecret, limits: Limits) -> None:
        b = self.base
        receipt = _Receipt(
            secret.created_at_ms,
            secret.expires_at_ms,
            secret.max_views,
            secret.owner_id,
            secret.delete_token_hash,
            secret.client_encrypted,
            secret.passphrase_hash is not None,
        )
        keep_until = secret.expires_at_ms + self.retention_ms
        keys = [
            b + "s:" + secret.id,
            b + "r:" + secret.id,
            b + "l:" + secret.id,
            *self._accounting,
            b + "q:" + secret.quota_key,
        ]
        args: list[bytes | str | int] = [
            secret.id,
            secret.created_at_ms,
            secret.expires_at_ms,
            len(secret.ciphertext),
            limits.max_total_bytes,
            limits.max_live,
            secret.ciphertext,
            secret.max_views,
            secret.passphrase_hash or "",
            "1" if secret.client_encrypted else "0",
            _encode(receipt),
            _event("created", secret.created_at_ms, secret.creator_client),
            keep_until,
            secret.created_at_ms,
        ]
        result = int(await self._call(lambda: self._create(keys=keys, args=args)))
        if result == -1:
            raise StorageFull("Secret storage is full; try again later.", retry_after=60)
        if result == -2:
            raise LiveLimitReached(
                f"At most {limits.max_live} live secrets at a time; burn or let some expire first.",
                extra={"limit": limits.max_live},
            )
        if result != 1:
            raise RuntimeError("secret id already in use")  # 128 random bits: not expected to happen

    async def metadata(self, secret_id: str, now_ms: int) -> LiveSecret | None:
        found = await self._call(lambda: self.client.hmget(self.base + "s:" + secret_id, _FIELDS))
        return _live(secret_id, found, now_ms)

    async def claim(
        self, secret_id: str, now_ms: int, *, passphrase_checked: bool, client: str | None
    ) -> Claim | Refusal:
        args: list[bytes | str | int] = [
            secret_id,
            now_ms,
            _event("viewed", now_ms, client),
            "1" if passphrase_checked else "0",
        ]
        result = await self._call(lambda: self._claim(keys=self._keys(secret_id), args=args))
        if isinstance(result, list):
            return Claim(
                ciphertext=bytes(result[0]), views_remaining=int(result[1]), client_encrypted=result[2] == b"1"
            )
        return Refusal.NEEDS_PASSPHRASE if int(result) == 1 else Refusal.GONE

    async def burn(self, secret_id: str, now_ms: int, *, client: str | None) -> bool:
        args: list[bytes | str | int] = [secret_id, now_ms, _event("burned", now_ms, client)]
        return bool(await self._call(lambda: self._burn(keys=self._keys(secret_id), args=args)))

    async def receipt(self, secret_id: str) -> Receipt | None:
        async def read() -> list[Any]:
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.get(self.base + "r:" + secret_id)
                pipe.lrange(self.base + "l:" + secret_id, 0, -1)
                result: list[Any] = await pipe.execute()
                return result

        raw, events = await self._call(read)
        if raw is None:
            return None
        r = _decode_receipt(raw)
        return Receipt(
            id=secret_id,
            created_at_ms=r.created_at_ms,
            expires_at_ms=r.expires_at_ms,
            max_views=r.max_views,
            owner_id=r.owner_id,
            delete_token_hash=r.delete_token_hash,
            client_encrypted=r.client_encrypted,
            requires_passphrase=r.requires_passphrase,
            events=[Event(*_decode_event(e)) for e in events],
        )

    async def owned(self, owner_quota_key: str, now_ms: int, limit: int) -> list[LiveSecret]:
        index = self.base + "q:" + owner_quota_key
        ids = await self._call(lambda: self.client.zrangebyscore(index, f"({now_ms}", "+inf", start=0, num=limit))
        if not ids:
            return []
        names = [cast("bytes", i).decode() for i in ids]

        async def read() -> list[Any]:
            async with self.client.pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.hmget(self.base + "s:" + name, _FIELDS)
                result: list[Any] = await pipe.execute()
                return result

        rows = await self._call(read)
        found = [s for s in (_live(n, row, now_ms) for n, row in zip(names, rows, strict=True)) if s is not None]
        return sorted(found, key=lambda s: s.created_at_ms, reverse=True)

    async def purge(self, now_ms: int, retention_ms: int) -> int:
        # The secrets themselves expire natively; this only gives back the bytes of expired ones.
        total = 0
        while True:
            trimmed = int(await self._call(lambda: self._trim(keys=self._accounting, args=[now_ms, 1000])))
            total += trimmed
            if trimmed < 1000:
                return total

    async def stored_bytes(self) -> int:
        return int(await self._call(lambda: self.client.get(self.base + "t")) or 0)

    async def close(self) -> None:
        return None  # the client belongs to the platform


def _live(secret_id: str, found: list[Any], now_ms: int) -> LiveSecret | None:
    views, expires, created, max_views, client_encrypted, passphrase = found
    if views is None or int(views) <= 0 or int(expires) <= now_ms:
        return None
    return LiveSecret(
        id=secret_id,
        created_at_ms=int(created),
        expires_at_ms=int(expires),
        views_remaining=int(views),
        max_views=int(max_views),
        client_encrypted=client_encrypted == b"1",
        passphrase_hash=passphrase.decode() if passphrase else None,
    )
