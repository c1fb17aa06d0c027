"""The SQL data layer: SQLite writers take turns within a process instead of sleeping in SQLite's busy
handler; the turn is bounded; PostgreSQL needs none."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from bastion.core.db import Database, DatabaseUnavailable, create_engine


async def _sqlite(path: Path, *, write_timeout: float = 5.0) -> Database:
    db = Database(create_engine(f"sqlite+aiosqlite:///{path}"), write_timeout=write_timeout)
    async with db.begin() as conn:
        await conn.execute(text("CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)"))
        await conn.execute(text("INSERT INTO counter VALUES (1, 0)"))
    return db


async def test_concurrent_sqlite_writers_never_overlap_and_none_is_lost(tmp_path: Path) -> None:
    db = await _sqlite(tmp_path / "db.sqlite")
    inside, most = 0, 0

    async def increment() -> None:
        nonlocal inside, most
        async with db.begin() as conn:
            inside += 1
            most = max(most, inside)
            n = await conn.scalar(text("SELECT n FROM counter WHERE id = 1"))
            await asyncio.sleep(0)  # give every other writer the chance to start inside
            await conn.execute(text("UPDATE counter SET n = :n WHERE id = 1"), {"n": n + 1})
            inside -= 1

    try:
        await asyncio.gather(*[increment() for _ in range(50)])
        async with db.engine.connect() as conn:
            assert await conn.scalar(text("SELECT n FROM counter")) == 50  # a read-modify-write lost nothing
        assert most == 1
    finally:
        await db.close()


async def test_a_session_transaction_takes_the_same_turn(tmp_path: Path) -> None:
    db = await _sqlite(tmp_path / "db.sqlite")
    try:
        async with db.begin():
            waiting = asyncio.create_task(_write_in_session(db))
            await asyncio.sleep(0.05)
            assert not waiting.done()  # queued behind the open Core transaction
        await asyncio.wait_for(waiting, 5)
        async with db.engine.connect() as conn:
            assert await conn.scalar(text("SELECT n FROM counter")) == 7
    finally:
        await db.close()


async def _write_in_session(db: Database) -> None:
    async with db.transaction() as session:
        await session.execute(text("UPDATE counter SET n = 7 WHERE id = 1"))


async def test_a_writer_that_waits_past_the_timeout_gets_database_busy(tmp_path: Path) -> None:
    db = await _sqlite(tmp_path / "db.sqlite", write_timeout=0.1)
    try:
        async with db.begin():
            began = time.monotonic()
            with pytest.raises(DatabaseUnavailable, match="busy"):
                async with db.begin():
                    pass
            assert time.monotonic() - began < 2
    finally:
        await db.close()


async def test_a_failed_transaction_rolls_back_and_frees_the_turn(tmp_path: Path) -> None:
    db = await _sqlite(tmp_path / "db.sqlite", write_timeout=0.5)
    try:
        with pytest.raises(RuntimeError):
            await _write_then_fail(db)
        async with db.begin() as conn:  # would time out if the turn had not been given back
            assert await conn.scalar(text("SELECT n FROM counter")) == 0
    finally:
        await db.close()


async def _write_then_fail(db: Database) -> None:
    async with db.begin() as conn:
        await conn.execute(text("UPDATE counter SET n = 99 WHERE id = 1"))
        raise RuntimeError("boom")


async def test_sqlite_commits_reach_the_disk_before_they_return(tmp_path: Path) -> None:
    db = await _sqlite(tmp_path / "db.sqlite")
    try:
        async with db.engine.connect() as conn:
            assert await conn.scalar(text("PRAGMA journal_mode")) == "wal"
            assert await conn.scalar(text("PRAGMA synchronous")) == 2  # FULL: the WAL is synced on each commit
    finally:
        await db.close()


async def test_postgresql_writers_do_not_queue_in_the_process(postgres_url: str) -> None:
    db = Database(create_engine(postgres_url), write_timeout=0.1)
    try:
        async with db.begin() as first, db.begin() as second:  # two open write transactions at once
            assert await first.scalar(text("SELECT 1")) == 1
            assert await second.scalar(text("SELECT 2")) == 2
    finally:
        await db.close()


async def test_driver_connection_is_the_pooled_asyncpg_connection(postgres_url: str) -> None:
    """``driver_connection()`` yields asyncpg's own connection, taken from and returned to the engine's pool."""
    db = Database(create_engine(postgres_url))
    try:
        async with db.driver_connection() as conn:
            assert await conn.fetchval("SELECT $1::int + 1", 41) == 42
            first = conn
        async with db.driver_connection() as conn:
            assert conn is first  # the same pooled connection again, not a new one
    finally:
        await db.close()


async def test_a_driver_connection_that_dies_is_discarded_and_reported_as_unavailable(postgres_url: str) -> None:
    """A driver connection ended by the server raises the invalidated OperationalError that answers 503, and the
    next call gets a fresh connection."""
    from bastion.core.db import unavailable

    db = Database(create_engine(postgres_url))
    try:
        async with db.driver_connection() as conn:
            pid = await conn.fetchval("SELECT pg_backend_pid()")
        admin = Database(create_engine(postgres_url))  # a pool of its own: not the connection it ends
        try:
            async with admin.engine.connect() as conn:
                await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        finally:
            await admin.close()
        with pytest.raises(OperationalError) as raised:
            async with db.driver_connection() as conn:
                await conn.fetchval("SELECT 1")
        assert isinstance(unavailable(raised.value), DatabaseUnavailable)
        async with db.driver_connection() as conn:
            assert await conn.fetchval("SELECT pg_backend_pid()") != pid
    finally:
        await db.close()


async def test_driver_connection_is_refused_on_sqlite(tmp_path: Path) -> None:
    """SQLite has no asyncpg driver connection to hand out: asking is a programming error, said plainly."""
    db = await _sqlite(tmp_path / "db.sqlite")
    try:
        with pytest.raises(RuntimeError, match="PostgreSQL"):
            async with db.driver_connection():
                pass
    finally:
        await db.close()


async def test_driver_connections_beyond_the_pool_are_closed_when_returned(postgres_url: str) -> None:
    """Overflow connections handed out by ``driver_connection()`` are closed on return (in SQLAlchemy's greenlet:
    closing one outside it failed with ``MissingGreenlet`` and left its server backend open)."""
    db = Database(create_engine(postgres_url, pool_size=1, max_overflow=3))
    try:
        async with db.driver_connection() as a, db.driver_connection() as b, db.driver_connection() as c:
            pids = {await conn.fetchval("SELECT pg_backend_pid()") for conn in (a, b, c)}
        assert len(pids) == 3
        async with db.engine.connect() as conn:
            alive = await conn.scalar(
                text("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(:pids)"), {"pids": list(pids)}
            )
        assert alive == 1  # the one the pool keeps (and is now using for this query)
    finally:
        await db.close()
