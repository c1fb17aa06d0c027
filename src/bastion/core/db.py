"""SQL database: SQLAlchemy 2 async on SQLite (aiosqlite, the embedded default) or PostgreSQL (asyncpg).

    db = Database.from_settings(settings)
    async with db.transaction() as session:      # a session in a transaction, committed on exit
        session.add(Thing(...))
    async with db.begin() as conn:               # the same on a Core connection
        await conn.execute(update(...))

Write through ``transaction()`` / ``begin()``: on SQLite they also take the process's writer turn (see
:class:`WriterTurn`); reads may use ``session()`` or ``engine.connect()`` freely. A hot path on PostgreSQL
may skip SQLAlchemy's layers with ``driver_connection()`` (the pooled asyncpg connection itself)::

    async with db.driver_connection() as conn:    # asyncpg: $1 parameters, conn.transaction()
        row = await conn.fetchrow("UPDATE ... RETURNING ...", secret_id)

Modules declare tables on :class:`Base`. When the database cannot be reached, the error raised by
SQLAlchemy is translated (see :func:`unavailable`) into a 503 ``DATABASE_UNAVAILABLE`` with
Retry-After, and ``/health/ready`` turns 503, rather than a 500.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, cast

import sqlalchemy.exc as sa_exc
from sqlalchemy import MetaData, event, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.util import greenlet_spawn

from bastion.core.errors import DatabaseUnavailable as DatabaseUnavailable  # re-exported: raised here
from bastion.core.settings import CoreSettings

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class WriterTurn:
    """SQLite admits one writer at a time. A second connection that wants the write lock while another holds
    it does not queue: SQLite's busy handler puts it to sleep and retries, backing off 1, 2, 5, 10, 15, 20,
    25 ... 100 ms, so under concurrent writes a request waits far longer than the writes ahead of it take
    (measured on the secrets bench, 200 clients at 189 reveals/s: p99 58 ms with the busy handler, 9 ms
    with this queue). Within one process, writers therefore take turns on an asyncio lock (FIFO, no
    sleeping) before they begin; the busy handler remains for writers in other processes. The wait is
    bounded by the pool timeout and answered like an exhausted pool: 503, the database is busy.

    On PostgreSQL, whose row locks queue writers properly, the turn is a no-op."""

    def __init__(self, enabled: bool, timeout: float) -> None:
        self.enabled = enabled
        self.timeout = timeout
        self._lock: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[None]:
        if not self.enabled:
            yield
            return
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # an asyncio.Lock belongs to one event loop (tests run several)
            self._lock, self._loop = asyncio.Lock(), loop
        lock = cast("asyncio.Lock", self._lock)
        try:
            async with asyncio.timeout(self.timeout):
                await lock.acquire()
        except TimeoutError:
            raise DatabaseUnavailable("The database is busy.", retry_after=1) from None
        try:
            yield
        finally:
            lock.release()


class Database:
    def __init__(self, engine: AsyncEngine, *, write_timeout: float = 5.0) -> None:
        self.engine = engine
        self.sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
        self.writer_turn = WriterTurn(engine.dialect.name == "sqlite", write_timeout)
        self._driver_errors: tuple[type[BaseException], ...] | None = None

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @classmethod
    def from_settings(cls, settings: CoreSettings) -> Database:
        return cls(
            create_engine(
                settings.resolved_database_url,
                pool_size=settings.db_pool_size,
                max_overflow=settings.db_max_overflow,
                timeout=settings.db_timeout_seconds,
                statement_timeout=settings.db_statement_timeout_seconds,
            ),
            write_timeout=settings.db_timeout_seconds,
        )

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self.sessionmaker() as session:
            yield session

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session in a transaction that writes: committed on exit, rolled back if the block raises."""
        async with self.writer_turn(), self.sessionmaker() as session, session.begin():
            yield session

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        """A Core connection in a transaction that writes (``engine.begin()`` with the writer turn)."""
        async with self.writer_turn(), self.engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def driver_connection(self) -> AsyncIterator[Any]:
        """A pooled connection's own driver connection (asyncpg's), straight from the pool, without SQLAlchemy's
        ``Connection`` around it: for one-statement hot paths, where building and closing that wrapper and its
        cursor adapter cost a measurable share of the request (the secrets claim: 0.35 ms of CPU, about a
        fifth of a reveal). Returned to the pool, the connection is reset as usual (a rollback, a no-op when
        nothing is left open on it). A driver error that means the connection is unusable discards it and is
        raised as SQLAlchemy's invalidated ``OperationalError``, so :func:`unavailable` answers it with a 503
        and breakers count an outage, exactly as on SQLAlchemy's own path. PostgreSQL only."""
        if self.dialect != "postgresql":
            raise RuntimeError("driver_connection() is for PostgreSQL's asyncpg driver")
        if self._driver_errors is None:
            self._driver_errors = _asyncpg_connection_errors()
        pooled = await self.engine.raw_connection()
        try:
            yield pooled.driver_connection
        except self._driver_errors as exc:
            await greenlet_spawn(pooled.invalidate, exc)
            raise sa_exc.OperationalError("driver_connection", None, exc, connection_invalidated=True) from exc
        finally:
            # In SQLAlchemy's greenlet: returning an overflow connection closes it, which awaits the driver
            # (outside it that failed with MissingGreenlet and left the server's backend open).
            await greenlet_spawn(pooled.close)

    async def ping(self, timeout: float = 2.0) -> None:  # noqa: ASYNC109 - a probe bounds itself
        async def probe() -> None:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))

        try:
            await asyncio.wait_for(probe(), timeout)
        except Exception as exc:
            raise DatabaseUnavailable("The database did not answer.", retry_after=5) from exc

    async def close(self) -> None:
        await self.engine.dispose()


def _asyncpg_connection_errors() -> tuple[type[BaseException], ...]:
    """Errors of the asyncpg driver that mean its connection is unusable (the server went away, it timed out,
    an administrator ended it)."""
    import asyncpg  # type: ignore[import-untyped]

    return (
        OSError,
        TimeoutError,
        asyncpg.InterfaceError,
        asyncpg.PostgresConnectionError,
        asyncpg.exceptions.OperatorInterventionError,
        # The protocol's state machine broken ("cannot switch to state 11; another operation is in progress"):
        # what a query meets when the server ended the backend just as it was sent (seen once in a CI run of
        # test_a_driver_connection_that_dies_…; ConnectionDoesNotExistError the other times). Nothing more can
        # be sent on that connection.
        asyncpg.InternalClientError,
    )


PING_AFTER_IDLE_SECONDS = 1.0
"""A pooled connection is pinged on checkout only if it sat unused in the pool for longer than this."""


def _ping_idle_connections(engine: AsyncEngine, idle_seconds: float = PING_AFTER_IDLE_SECONDS) -> None:
    """Pessimistic disconnect handling, as ``pool_pre_ping`` does, but skipping connections used within the
    last ``idle_seconds`` (HikariCP's "alive bypass window"). ``pool_pre_ping`` pings on every checkout, which
    on asyncpg is three round trips (BEGIN, a no-op statement, ROLLBACK): measured, that doubled the cost of
    a one-statement request (1.6 ms of CPU instead of 0.7). A connection that just came back from a
    successful request is as alive as a ping would show; one that breaks anyway fails its statement, which
    SQLAlchemy turns into an invalidation of the whole pool (and :func:`unavailable` into a 503), exactly as
    a connection dying between a ping and its use always could."""
    pool = engine.sync_engine.pool
    dialect = engine.sync_engine.dialect

    @event.listens_for(pool, "checkin")
    def _checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info["bastion_idle_since"] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.pop("bastion_idle_since", None)
        if since is None or time.monotonic() - since <= idle_seconds:
            return  # a new connection, or one in use a moment ago
        try:
            alive = dialect.do_ping(dbapi_connection)
        except Exception as exc:
            if not dialect.is_disconnect(exc, dbapi_connection, None):  # type: ignore[arg-type]
                raise
            alive = False
        if not alive:
            # the pool discards this connection and checks out another (a fresh one if need be)
            raise sa_exc.DisconnectionError("the pooled connection did not answer a ping")


def create_engine(
    url: str,
    *,
    pool_size: int = 10,
    max_overflow: int = 10,
    timeout: float = 5.0,
    statement_timeout: float | None = None,
) -> AsyncEngine:
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        # SQLite: one file, WAL so readers never block the writer, and a busy timeout so writers in other
        # processes queue instead of failing with "database is locked". synchronous=FULL: every commit
        # is on disk before it returns. (NORMAL, usual with WAL, can lose the last commits on a power
        # cut: an accepted secret, or a view already claimed, which would then be revealed again.
        # FULL cost nothing measurable on the secrets bench: 327 vs 318 creates/s, 476 vs 479 reveals/s.)
        kwargs["connect_args"] = {"timeout": 30}
        engine = create_async_engine(url, **kwargs)

        @event.listens_for(engine.sync_engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        _ping_idle_connections(engine)
        return engine
    kwargs.update(
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=timeout,
        pool_recycle=1800,
        # command_timeout bounds every statement on the client side: a database that accepted the connection
        # and stopped answering (a partition, a hung failover) would otherwise hold the request forever.
        connect_args={
            "timeout": timeout,
            "command_timeout": statement_timeout,
            "server_settings": {"application_name": "bastion"},
        },
    )
    engine = create_async_engine(url, **kwargs)
    _ping_idle_connections(engine)
    return engine


_CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,  # the pool had no connection to give within pool_timeout
    ConnectionError,
    TimeoutError,
    OSError,
)


def unavailable(exc: BaseException) -> DatabaseUnavailable | None:
    """A 503 for an exception that means the database cannot be reached, else None."""
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return DatabaseUnavailable("The database connection was lost.", retry_after=5)
    if isinstance(exc, _CONNECTION_ERRORS):
        if isinstance(exc, sa_exc.OperationalError) and "locked" in str(exc.orig):
            return DatabaseUnavailable("The database is busy.", retry_after=1)
        return DatabaseUnavailable("The database is unavailable.", retry_after=5)
    return None
