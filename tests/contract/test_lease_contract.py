"""The lease contract, one suite run against every backend: memory, real Redis, SQLite and real PostgreSQL.

Time is a fake clock for memory and SQL (both judge expiry by the caller's clock); on Redis, whose own clock
decides, ``elapse`` shortens the TTL of every key of the test instead, so no test sleeps.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import bastion.migrate as migrate
from bastion.core.db import Database
from bastion.core.jobs.leases import Leases, MemoryLeases
from bastion.core.jobs.leases.redis import RedisLeases
from bastion.core.jobs.leases.sql import SqlLeases
from bastion.core.stores.redis import connect
from bastion.settings import Settings
from tests.support import FakeClock

TTL = 30.0


@dataclass
class Backend:
    name: str
    leases: Leases
    elapse: Callable[[float], Awaitable[None]]


async def _sql(url: str | None, data_dir: Path) -> Database:
    overrides: dict[str, Any] = {"database_url": url} if url else {}
    settings = Settings(_env_file=None, data_dir=data_dir, **overrides)
    await asyncio.to_thread(migrate.upgrade, settings, [])  # the core's branch: core_job_lease
    return Database.from_settings(settings)


@pytest.fixture(params=["memory", "redis", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def server(request: pytest.FixtureRequest) -> tuple[str, str | None]:
    """The backend's name and the URL of its server (resolved here: a sync fixture may ask for async ones)."""
    if request.param in ("redis", "postgres"):
        return request.param, request.getfixturevalue(f"{request.param}_url")
    return request.param, None


@pytest.fixture
async def backend(server: tuple[str, str | None], tmp_path: Path) -> AsyncIterator[Backend]:
    name, url = server
    clock = FakeClock()

    async def advance(seconds: float) -> None:
        clock.advance(seconds)

    if name == "memory":
        yield Backend(name, MemoryLeases(clock=clock), advance)
        return
    if name == "redis":
        assert url is not None
        client = connect(url, timeout=2.0)
        prefix = f"tlease:{uuid.uuid4().hex}:"

        async def shorten(seconds: float) -> None:
            async for key in client.scan_iter(match=prefix + "*"):
                left = await client.pttl(key) - int(seconds * 1000)
                await (client.delete(key) if left <= 0 else client.pexpire(key, left))

        try:
            yield Backend(name, RedisLeases(client, prefix=prefix), shorten)
        finally:
            keys = [key async for key in client.scan_iter(match=prefix + "*")]
            if keys:
                await client.delete(*keys)
            await client.aclose()
        return
    db = await _sql(url, tmp_path / "data")
    try:
        yield Backend(name, SqlLeases(db, clock=clock), advance)
    finally:
        await db.close()


async def test_a_free_lease_is_acquired(backend: Backend):
    """Nobody holds a new name: the first acquire gets it."""
    assert await backend.leases.acquire("job", "a", TTL) is True


async def test_a_held_lease_is_exclusive(backend: Backend):
    """While ``a`` holds the lease, ``b`` cannot acquire it."""
    await backend.leases.acquire("job", "a", TTL)
    assert await backend.leases.acquire("job", "b", TTL) is False


async def test_the_holder_renews_its_own_lease(backend: Backend):
    """Acquiring again as the holder succeeds and pushes the expiry out by a whole TTL."""
    await backend.leases.acquire("job", "a", TTL)
    await backend.elapse(TTL * 0.7)
    assert await backend.leases.acquire("job", "a", TTL) is True
    await backend.elapse(TTL * 0.7)  # past the first expiry, within the renewed one
    assert await backend.leases.acquire("job", "b", TTL) is False


async def test_an_expired_lease_is_taken_over(backend: Backend):
    """Once the TTL has run out without renewal, another holder gets the lease and the old one has lost it."""
    await backend.leases.acquire("job", "a", TTL)
    await backend.elapse(TTL + 1)
    assert await backend.leases.acquire("job", "b", TTL) is True
    assert await backend.leases.acquire("job", "a", TTL) is False


async def test_release_by_the_holder_frees_the_lease(backend: Backend):
    """After its holder releases it, another holder acquires the lease at once."""
    await backend.leases.acquire("job", "a", TTL)
    assert await backend.leases.release("job", "a") is True
    assert await backend.leases.acquire("job", "b", TTL) is True


async def test_release_by_another_holder_changes_nothing(backend: Backend):
    """Only the holder can release: anyone else's release is refused and the lease stays held."""
    await backend.leases.acquire("job", "a", TTL)
    assert await backend.leases.release("job", "b") is False
    assert await backend.leases.acquire("job", "b", TTL) is False


async def test_a_stale_holder_cannot_release_its_successors_lease(backend: Backend):
    """A holder whose lease expired and was taken over releases nothing of the new holder's."""
    await backend.leases.acquire("job", "a", TTL)
    await backend.elapse(TTL + 1)
    await backend.leases.acquire("job", "b", TTL)
    assert await backend.leases.release("job", "a") is False
    assert await backend.leases.acquire("job", "c", TTL) is False


async def test_releasing_a_lease_nobody_holds_is_refused(backend: Backend):
    """release of a name never acquired, or already expired, answers False."""
    assert await backend.leases.release("never", "a") is False
    await backend.leases.acquire("job", "a", TTL)
    await backend.elapse(TTL + 1)
    assert await backend.leases.release("job", "a") is False


async def test_leases_of_different_names_are_independent(backend: Backend):
    """Holding one name does not stop another holder from acquiring another name."""
    await backend.leases.acquire("one", "a", TTL)
    assert await backend.leases.acquire("two", "b", TTL) is True


async def test_of_many_concurrent_acquirers_exactly_one_wins(backend: Backend):
    """Fifty holders asking at the same moment: exactly one gets the lease."""
    won = await asyncio.gather(*(backend.leases.acquire("job", f"h{n}", TTL) for n in range(50)))
    assert sum(won) == 1


async def test_of_many_concurrent_acquirers_of_an_expired_lease_exactly_one_wins(backend: Backend):
    """Fifty holders racing for a lease that has just expired: exactly one takes it over."""
    await backend.leases.acquire("job", "old", TTL)
    await backend.elapse(TTL + 1)
    won = await asyncio.gather(*(backend.leases.acquire("job", f"h{n}", TTL) for n in range(50)))
    assert sum(won) == 1
