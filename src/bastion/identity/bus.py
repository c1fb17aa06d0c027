"""Revocation broadcast: every instance drops cached credentials the moment one is revoked.

One protocol, three carriers, chosen by what is configured:

* ``RedisBus``    Redis pub/sub (``BASTION_REDIS_URL`` set): every worker of every instance;
* ``PostgresBus`` PostgreSQL LISTEN/NOTIFY (PostgreSQL without Redis): the same, through the database;
* ``LocalBus``    in-process only (the embedded SQLite default): other worker processes catch up within
                  the cache TTL.

``publish(tags)`` invalidates this instance first, then broadcasts ``i <origin> <nonce> <tag>…`` and
waits (at most ``ACK_TIMEOUT``) until every subscriber has acknowledged on the publisher's own ack
channel. The number to wait for is what the carrier reports: the receiver count PUBLISH returns, or
the listeners PostgreSQL shows in ``pg_stat_activity``. So when a revocation request returns, every
live instance has already dropped the credential; pub/sub alone would only say the message was sent.

A subscriber that loses its connection clears its whole cache when it reconnects, since it may have
missed messages; while it is down, the cache TTL bounds how stale an answer can be.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import weakref
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any

from bastion.core.logging import get_logger

if TYPE_CHECKING:
    import redis.asyncio as aioredis
    from sqlalchemy.ext.asyncio import AsyncEngine

log = get_logger("bastion.identity")
TagHandler = Callable[[Sequence[str]], None]
ACK_TIMEOUT = 1.0
CONNECT_TIMEOUT = 2.0
LISTENER_NAME = "bastion-identity-bus"
_MAX_BACKOFF = 5.0


class _Acks:
    __slots__ = ("done", "expected", "seen")

    def __init__(self, done: asyncio.Future[None]) -> None:
        self.done = done
        self.expected: int | None = None
        self.seen = 0

    def check(self) -> None:
        if self.expected is not None and self.seen >= self.expected and not self.done.done():
            self.done.set_result(None)


class Bus:
    """The shared part: local delivery, the message format, acknowledgements, the reconnect loop's hooks."""

    def __init__(self, on_tags: TagHandler, on_gap: Callable[[], None]) -> None:
        self.on_tags = on_tags
        self.on_gap = on_gap
        self.origin = secrets.token_hex(6)
        self.connected = False
        self._pending: dict[str, _Acks] = {}
        self._subscribed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._acking: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        """Subscribe; waits up to CONNECT_TIMEOUT for the subscription, then carries on retrying."""
        self._task = asyncio.get_running_loop().create_task(self._listen(), name=f"identity-{type(self).__name__}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._subscribed.wait(), CONNECT_TIMEOUT)

    async def publish(self, tags: Sequence[str]) -> None:
        self.on_tags(tags)
        nonce = secrets.token_hex(8)
        acks = _Acks(asyncio.get_running_loop().create_future())
        self._pending[nonce] = acks
        try:
            receivers = await self._send(" ".join(["i", self.origin, nonce, *tags]))
            if self.connected and receivers:
                acks.expected = receivers
                acks.check()
                await asyncio.wait_for(asyncio.shield(acks.done), ACK_TIMEOUT)
        except TimeoutError:
            log.warning(
                "revocation not acknowledged by every instance in time", expected=acks.expected, acknowledged=acks.seen
            )
        except Exception as exc:  # the revocation is committed; only its broadcast failed
            log.warning(
                "revocation broadcast failed; other instances catch up within the cache TTL", error=type(exc).__name__
            )
        finally:
            self._pending.pop(nonce, None)

    def received(self, payload: str | bytes) -> None:
        """A broadcast: drop the tags here, then acknowledge to its publisher."""
        kind, origin, nonce, *tags = _text(payload).split()
        if kind != "i":
            return
        if tags:
            self.on_tags(tags)
        task = asyncio.get_running_loop().create_task(self._ack_quietly(origin, nonce))
        self._acking.add(task)
        task.add_done_callback(self._acking.discard)

    def acknowledged(self, payload: str | bytes) -> None:
        acks = self._pending.get(_text(payload).strip())
        if acks is not None:
            acks.seen += 1
            acks.check()

    async def _ack_quietly(self, origin: str, nonce: str) -> None:
        try:
            await self._ack(origin, nonce)
        except Exception as exc:  # the publisher times out and says so; nothing else depends on it
            log.warning("revocation acknowledgement failed", error=type(exc).__name__)

    def _up(self) -> None:
        self.connected = True
        self.on_gap()
        self._subscribed.set()

    async def close(self) -> None:
        tasks = [t for t in (self._task, *self._acking) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._task = None

    async def _send(self, payload: str) -> int | None:
        """Broadcast; returns how many subscribers will receive it (None: unknown)."""
        raise NotImplementedError

    async def _ack(self, origin: str, nonce: str) -> None:
        raise NotImplementedError

    def _listen(self) -> Coroutine[Any, Any, None]:
        raise NotImplementedError


def _text(payload: str | bytes) -> str:
    return payload.decode() if isinstance(payload, bytes) else payload


_local_buses: weakref.WeakSet[LocalBus] = weakref.WeakSet()


class LocalBus(Bus):
    """Every identity instance in this process (several apps in one process share it)."""

    async def start(self) -> None:
        _local_buses.add(self)
        self.connected = True

    async def publish(self, tags: Sequence[str]) -> None:
        for bus in list(_local_buses) or [self]:
            bus.on_tags(tags)

    async def close(self) -> None:
        _local_buses.discard(self)


class RedisBus(Bus):
    def __init__(
        self, on_tags: TagHandler, on_gap: Callable[[], None], *, url: str, channel: str, publisher: aioredis.Redis
    ) -> None:
        super().__init__(on_tags, on_gap)
        self.url = url
        self.channel = channel
        self.publisher = publisher

    def _ack_channel(self, origin: str) -> str:
        return f"{self.channel}:ack:{origin}"

    async def _send(self, payload: str) -> int | None:
        return int(await self.publisher.publish(self.channel, payload))

    async def _ack(self, origin: str, nonce: str) -> None:
        await self.publisher.publish(self._ack_channel(origin), nonce)

    async def _listen(self) -> None:
        import redis.asyncio as aioredis
        from redis.exceptions import RedisError

        backoff = 0.1
        mine = self._ack_channel(self.origin)
        while True:
            # A connection of its own with no read timeout: a subscriber waits for messages indefinitely.
            client = aioredis.from_url(
                self.url, socket_connect_timeout=CONNECT_TIMEOUT, socket_keepalive=True, health_check_interval=30
            )
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel, mine)
                self._up()
                backoff = 0.1
                async for message in pubsub.listen():
                    if message.get("type") != "message":
                        continue
                    channel = _text(message["channel"])
                    (self.acknowledged if channel == mine else self.received)(message["data"])
            except (RedisError, OSError, TimeoutError) as exc:
                log.warning("revocation subscriber lost Redis; reconnecting", error=type(exc).__name__)
            finally:
                self.connected = False
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                    await client.aclose()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _MAX_BACKOFF)


class PostgresBus(Bus):
    PING_SECONDS = 15.0

    def __init__(
        self, on_tags: TagHandler, on_gap: Callable[[], None], *, dsn: str, channel: str, engine: AsyncEngine
    ) -> None:
        super().__init__(on_tags, on_gap)
        self.dsn = dsn
        self.channel = channel
        self.engine = engine

    def _ack_channel(self, origin: str) -> str:
        return f"{self.channel}_ack_{origin}"

    async def _send(self, payload: str) -> int | None:
        from sqlalchemy import text

        async with self.engine.begin() as conn:
            # The listeners connected now are the ones the notification reaches when this commits.
            listeners = await conn.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND application_name = :name"
                ),
                {"name": LISTENER_NAME},
            )
            await conn.execute(
                text("SELECT pg_notify(:channel, :payload)"), {"channel": self.channel, "payload": payload}
            )
        return int(listeners or 0)

    async def _ack(self, origin: str, nonce: str) -> None:
        from sqlalchemy import text

        async with self.engine.begin() as conn:
            await conn.execute(
                text("SELECT pg_notify(:channel, :payload)"), {"channel": self._ack_channel(origin), "payload": nonce}
            )

    async def _listen(self) -> None:
        import asyncpg  # type: ignore[import-untyped]

        backoff = 0.1
        while True:
            conn: Any = None
            try:
                conn = await asyncpg.connect(
                    self.dsn, timeout=CONNECT_TIMEOUT, server_settings={"application_name": LISTENER_NAME}
                )
                closed = asyncio.Event()
                conn.add_termination_listener(lambda _conn, ended=closed: ended.set())
                await conn.add_listener(self.channel, lambda _c, _pid, _ch, payload: self.received(payload))
                await conn.add_listener(
                    self._ack_channel(self.origin), lambda _c, _pid, _ch, payload: self.acknowledged(payload)
                )
                self._up()
                backoff = 0.1
                while not closed.is_set():
                    # Notifications arrive while the connection idles; a periodic query notices one that died.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(closed.wait(), self.PING_SECONDS)
                    if not closed.is_set():
                        await conn.execute("SELECT 1", timeout=CONNECT_TIMEOUT)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("revocation listener lost PostgreSQL; reconnecting", error=type(exc).__name__)
            finally:
                self.connected = False
                if conn is not None:
                    conn.terminate()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _MAX_BACKOFF)
