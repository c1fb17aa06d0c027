"""The fast key-value Store contract, one suite run against every backend: memory and real Redis.

Time is a fake clock for the memory store and real (short) TTLs on Redis; ``elapse`` hides which.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from bastion.core.stores import MemoryStore, Store, StoreUnavailable
from bastion.core.stores.redis import RedisStore, connect
from tests.conftest import free_port
from tests.support import FakeClock

TTL = 0.2
"""A short expiry: instant on the fake clock, a fraction of a second on Redis."""
PAST_TTL = TTL + 0.1


@dataclass
class Backend:
    name: str
    store: Store
    elapse: Callable[[float], Awaitable[None]]


@pytest.fixture(params=["memory", "redis"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    if request.param == "memory":
        clock = FakeClock()

        async def advance(seconds: float) -> None:
            clock.advance(seconds)

        store = MemoryStore(clock=clock)
        yield Backend("memory", store, advance)
        await store.close()
        return

    url = request.getfixturevalue("redis_url")
    client = connect(url, timeout=2.0)
    prefix = f"tstore:{uuid.uuid4().hex}:"
    try:
        yield Backend("redis", RedisStore(client, prefix=prefix), asyncio.sleep)
    finally:
        keys = [key async for key in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


# --- get / set ---------------------------------------------------------------------------------


async def test_get_of_a_missing_key_is_none(backend):
    """Reading a key that was never set gives None."""
    assert await backend.store.get("nothing-here") is None


async def test_set_then_get_returns_the_bytes(backend):
    """A value set is read back byte for byte, including bytes that are not text."""
    value = b"\x00\xffbinary\r\n" + bytes(range(256))
    await backend.store.set("k", value)
    assert await backend.store.get("k") == value


async def test_set_overwrites_an_existing_value(backend):
    """A second set of the same key replaces the first value."""
    await backend.store.set("k", b"one")
    await backend.store.set("k", b"two")
    assert await backend.store.get("k") == b"two"


async def test_keys_are_independent(backend):
    """Setting one key leaves another untouched."""
    await backend.store.set("a", b"1")
    await backend.store.set("b", b"2")
    assert await backend.store.get("a") == b"1"
    assert await backend.store.get("b") == b"2"


async def test_set_with_ttl_is_readable_before_it_expires(backend):
    """A value with a ttl is there until the ttl has passed."""
    await backend.store.set("k", b"v", ttl=10)
    await backend.elapse(TTL)
    assert await backend.store.get("k") == b"v"


async def test_set_with_ttl_expires(backend):
    """A value set with a ttl is gone once the ttl has passed."""
    await backend.store.set("k", b"v", ttl=TTL)
    await backend.elapse(PAST_TTL)
    assert await backend.store.get("k") is None


async def test_set_without_ttl_never_expires(backend):
    """A value set without a ttl stays and reports no ttl."""
    await backend.store.set("k", b"v")
    await backend.elapse(PAST_TTL)
    assert await backend.store.get("k") == b"v"
    assert await backend.store.ttl("k") is None


async def test_set_without_ttl_clears_a_previous_ttl(backend):
    """Setting a key again without a ttl makes it persistent."""
    await backend.store.set("k", b"old", ttl=TTL)
    await backend.store.set("k", b"new")
    await backend.elapse(PAST_TTL)
    assert await backend.store.get("k") == b"new"


# --- set_if_absent -----------------------------------------------------------------------------


async def test_set_if_absent_stores_a_missing_key(backend):
    """set_if_absent on a missing key stores the value and returns True."""
    assert await backend.store.set_if_absent("k", b"v") is True
    assert await backend.store.get("k") == b"v"


async def test_set_if_absent_keeps_an_existing_value(backend):
    """set_if_absent on an existing key returns False and leaves the value as it was."""
    await backend.store.set("k", b"first")
    assert await backend.store.set_if_absent("k", b"second") is False
    assert await backend.store.get("k") == b"first"


async def test_set_if_absent_succeeds_once_the_previous_value_expired(backend):
    """An expired key counts as missing for set_if_absent."""
    await backend.store.set("k", b"old", ttl=TTL)
    await backend.elapse(PAST_TTL)
    assert await backend.store.set_if_absent("k", b"new") is True
    assert await backend.store.get("k") == b"new"


async def test_set_if_absent_with_ttl_expires(backend):
    """A claim made with a ttl is released when the ttl passes."""
    assert await backend.store.set_if_absent("k", b"v", ttl=TTL) is True
    await backend.elapse(PAST_TTL)
    assert await backend.store.get("k") is None


async def test_concurrent_set_if_absent_has_exactly_one_winner(backend):
    """Of 100 concurrent set_if_absent calls on one key exactly one returns True."""
    results = await asyncio.gather(*(backend.store.set_if_absent("claim", str(i).encode(), ttl=60) for i in range(100)))
    assert results.count(True) == 1
    winner = results.index(True)
    assert await backend.store.get("claim") == str(winner).encode()


# --- replace -----------------------------------------------------------------------------------


async def test_replace_of_a_missing_key_does_nothing(backend):
    """replace on a missing key returns False and does not create it."""
    assert await backend.store.replace("k", b"v") is False
    assert await backend.store.get("k") is None


async def test_replace_of_an_existing_key_stores_the_value(backend):
    """replace on an existing key returns True and stores the new value."""
    await backend.store.set("k", b"old")
    assert await backend.store.replace("k", b"new") is True
    assert await backend.store.get("k") == b"new"


async def test_replace_of_an_expired_key_does_nothing(backend):
    """An expired key counts as missing for replace."""
    await backend.store.set("k", b"old", ttl=TTL)
    await backend.elapse(PAST_TTL)
    assert await backend.store.replace("k", b"new") is False
    assert await backend.store.get("k") is None


async def test_replace_with_ttl_sets_the_expiry(backend):
    """replace with a ttl makes the replaced value expire."""
    await backend.store.set("k", b"old")
    assert await backend.store.replace("k", b"new", ttl=TTL) is True
    assert await backend.store.get("k") == b"new"
    await backend.elapse(PAST_TTL)
    assert await backend.store.get("k") is None


# --- delete / get_and_delete -------------------------------------------------------------------


async def test_delete_removes_an_existing_key(backend):
    """delete of an existing key returns True and the key is gone."""
    await backend.store.set("k", b"v")
    assert await backend.store.delete("k") is True
    assert await backend.store.get("k") is None


async def test_delete_of_a_missing_key_returns_false(backend):
    """delete of a key that does not exist returns False."""
    assert await backend.store.delete("k") is False


async def test_delete_of_an_expired_key_returns_false(backend):
    """An expired key counts as missing for delete."""
    await backend.store.set("k", b"v", ttl=TTL)
    await backend.elapse(PAST_TTL)
    assert await backend.store.delete("k") is False


async def test_get_and_delete_returns_the_value_and_removes_it(backend):
    """get_and_delete gives the value once; the key is gone afterwards."""
    await backend.store.set("k", b"once")
    assert await backend.store.get_and_delete("k") == b"once"
    assert await backend.store.get("k") is None
    assert await backend.store.get_and_delete("k") is None


async def test_get_and_delete_of_a_missing_key_is_none(backend):
    """get_and_delete of a key that does not exist gives None."""
    assert await backend.store.get_and_delete("k") is None


async def test_get_and_delete_of_an_expired_key_is_none(backend):
    """An expired value cannot be read once more through get_and_delete."""
    await backend.store.set("k", b"v", ttl=TTL)
    await backend.elapse(PAST_TTL)
    assert await backend.store.get_and_delete("k") is None


async def test_concurrent_get_and_delete_gives_the_value_to_exactly_one(backend):
    """Of 100 concurrent get_and_delete calls exactly one receives the value."""
    await backend.store.set("nonce", b"secret")
    results = await asyncio.gather(*(backend.store.get_and_delete("nonce") for _ in range(100)))
    assert results.count(b"secret") == 1
    assert results.count(None) == 99


# --- increment ---------------------------------------------------------------------------------


async def test_increment_of_a_new_key_starts_from_zero(backend):
    """The first increment of a missing key returns the amount."""
    assert await backend.store.increment("n") == 1
    assert await backend.store.increment("m", 5) == 5


async def test_increment_adds_to_the_stored_value(backend):
    """Each increment adds its amount to the value, which reads back as decimal bytes."""
    await backend.store.increment("n")
    await backend.store.increment("n", 4)
    assert await backend.store.increment("n", -2) == 3
    assert await backend.store.get("n") == b"3"


async def test_increment_works_on_a_value_set_as_decimal_bytes(backend):
    """A counter may be seeded with set and then incremented."""
    await backend.store.set("n", b"41")
    assert await backend.store.increment("n") == 42


async def test_increment_with_ttl_expires_the_counter(backend):
    """A counter created with a ttl is gone after it, and counting starts again."""
    assert await backend.store.increment("n", ttl=TTL) == 1
    assert await backend.store.increment("n", ttl=TTL) == 2
    await backend.elapse(PAST_TTL)
    assert await backend.store.get("n") is None
    assert await backend.store.increment("n", ttl=TTL) == 1


async def test_increment_ttl_is_set_only_by_the_creating_call(backend):
    """Later increments do not extend the expiry the first one set."""
    await backend.store.increment("n", ttl=0.4)
    await backend.elapse(0.2)
    assert await backend.store.increment("n", ttl=0.4) == 2
    left = await backend.store.ttl("n")
    assert left is not None and left <= 0.25
    await backend.elapse(0.3)
    assert await backend.store.get("n") is None


async def test_increment_back_to_the_amount_keeps_the_original_expiry(backend):
    """A counter that returns to zero and is incremented again is not treated as new."""
    await backend.store.increment("n", ttl=0.4)
    await backend.store.increment("n", -1)
    await backend.elapse(0.2)
    await backend.store.increment("n", 1, ttl=0.4)
    left = await backend.store.ttl("n")
    assert left is not None and left <= 0.25


async def test_increment_with_ttl_does_not_add_expiry_to_a_persistent_key(backend):
    """An increment with a ttl on an existing key without expiry leaves it persistent."""
    await backend.store.set("n", b"0")
    await backend.store.increment("n", ttl=TTL)
    await backend.elapse(PAST_TTL)
    assert await backend.store.get("n") == b"1"
    assert await backend.store.ttl("n") is None


async def test_increment_without_ttl_never_expires(backend):
    """A counter created without a ttl stays and reports no ttl."""
    await backend.store.increment("n")
    await backend.elapse(PAST_TTL)
    assert await backend.store.increment("n") == 2
    assert await backend.store.ttl("n") is None


async def test_concurrent_increments_are_not_lost(backend):
    """200 concurrent increments of one counter leave it at 200."""
    results = await asyncio.gather(*(backend.store.increment("hits", ttl=60) for _ in range(200)))
    assert sorted(results) == list(range(1, 201))
    assert await backend.store.get("hits") == b"200"


# --- ttl / ping --------------------------------------------------------------------------------


async def test_ttl_of_a_missing_key_is_none(backend):
    """ttl of a key that does not exist is None."""
    assert await backend.store.ttl("k") is None


async def test_ttl_reports_the_seconds_left(backend):
    """ttl gives the remaining lifetime in seconds, which shrinks as time passes."""
    await backend.store.set("k", b"v", ttl=10)
    first = await backend.store.ttl("k")
    assert first is not None and 9.5 < first <= 10
    await backend.elapse(TTL)
    second = await backend.store.ttl("k")
    assert second is not None and second <= first - TTL + 0.01


async def test_ttl_of_an_expired_key_is_none(backend):
    """Once a key has expired its ttl is None."""
    await backend.store.set("k", b"v", ttl=TTL)
    await backend.elapse(PAST_TTL)
    assert await backend.store.ttl("k") is None


async def test_ping_answers_when_the_store_is_up(backend):
    """ping returns without error on a reachable store."""
    assert await backend.store.ping() is None


async def test_a_namespaced_view_reads_and_writes_under_its_prefix(backend):
    """A key written through ``namespaced("m:")`` is the parent's ``m:<key>``, and the other way round."""
    view = backend.store.namespaced("m:")
    await view.set("k", b"through the view")
    await backend.store.set("m:j", b"through the parent")
    assert await backend.store.get("m:k") == b"through the view"
    assert await view.get("j") == b"through the parent"


async def test_namespaced_views_do_not_see_each_other(backend):
    """Two views with different prefixes keep separate keys of the same name."""
    one, two = backend.store.namespaced("one:"), backend.store.namespaced("two:")
    await one.set("k", b"1")
    assert await two.get("k") is None
    assert await two.set_if_absent("k", b"2") is True
    assert await one.get("k") == b"1"


async def test_namespaces_nest(backend):
    """A view of a view joins both prefixes."""
    await backend.store.namespaced("a:").namespaced("b:").set("k", b"v")
    assert await backend.store.get("a:b:k") == b"v"


async def test_a_namespaced_view_keeps_the_atomic_operations(backend):
    """Claim-once, increment-with-expiry and read-once work through a view as on the store itself."""
    view = backend.store.namespaced("atomic:")
    claims = await asyncio.gather(*[view.set_if_absent("claim", b"x", ttl=60) for _ in range(20)])
    counts = await asyncio.gather(*[view.increment("count", ttl=60) for _ in range(20)])
    reads = await asyncio.gather(*[view.get_and_delete("claim") for _ in range(20)])
    assert claims.count(True) == 1 and sorted(counts) == list(range(1, 21))
    assert [r for r in reads if r is not None] == [b"x"]
    assert await view.ttl("count") is not None


async def test_closing_a_namespaced_view_leaves_the_data(backend):
    """Closing a view (which owns no connection) keeps every key, its own included."""
    view = backend.store.namespaced("closed:")
    await view.set("k", b"v")
    await view.close()
    assert await backend.store.get("closed:k") == b"v"


# --- Redis only --------------------------------------------------------------------------------


async def test_redis_stores_with_different_prefixes_do_not_see_each_other(redis_url):
    """Two RedisStores on one server are namespaced by their prefix."""
    client = connect(redis_url, timeout=2.0)
    tag = uuid.uuid4().hex
    one, two = RedisStore(client, prefix=f"tone:{tag}:"), RedisStore(client, prefix=f"ttwo:{tag}:")
    try:
        await one.set("k", b"one", ttl=60)
        assert await two.get("k") is None
        assert await two.set_if_absent("k", b"two", ttl=60) is True
        assert await one.get("k") == b"one"
        assert await client.get(f"tone:{tag}:k") == b"one"
    finally:
        await client.delete(f"tone:{tag}:k", f"ttwo:{tag}:k")
        await client.aclose()


_OPERATIONS: dict[str, Callable[[Store], Awaitable[Any]]] = {
    "get": lambda s: s.get("k"),
    "set": lambda s: s.set("k", b"v", ttl=1),
    "set_if_absent": lambda s: s.set_if_absent("k", b"v"),
    "replace": lambda s: s.replace("k", b"v"),
    "delete": lambda s: s.delete("k"),
    "get_and_delete": lambda s: s.get_and_delete("k"),
    "increment": lambda s: s.increment("k", ttl=1),
    "ttl": lambda s: s.ttl("k"),
    "ping": lambda s: s.ping(),
}


@pytest.mark.parametrize("operation", sorted(_OPERATIONS))
async def test_redis_store_that_cannot_connect_raises_store_unavailable(operation):
    """Every operation against a port where nothing listens raises StoreUnavailable, not a redis error."""
    client = connect(f"redis://127.0.0.1:{free_port()}/0", timeout=2.0)
    try:
        with pytest.raises(StoreUnavailable):
            await _OPERATIONS[operation](RedisStore(client, prefix="tdead:"))
    finally:
        await client.aclose()


async def test_redis_store_that_does_not_answer_raises_store_unavailable():
    """A server that accepts but never answers makes an operation fail with StoreUnavailable after the timeout."""
    writers: list[asyncio.StreamWriter] = []

    async def silent(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = connect(f"redis://127.0.0.1:{port}/0", timeout=0.2)
    try:
        async with asyncio.timeout(5):
            with pytest.raises(StoreUnavailable):
                await RedisStore(client, prefix="tsilent:").get("k")
    finally:
        await client.aclose()
        server.close()
        for writer in writers:
            writer.close()
        await server.wait_closed()


async def test_memory_counters_alone_are_swept():
    """A MemoryStore used only for counters still drops expired keys (its size stays bounded)."""
    clock = FakeClock()
    store = MemoryStore(clock=clock, max_keys=100)
    for n in range(300):
        await store.increment(f"c{n}", ttl=1.0)
        clock.advance(0.1)
    assert len(store._data) <= 100


async def test_memory_store_full_of_live_keys_refuses_a_new_key_and_forgets_none():
    """At its cap with every key live, a new key is refused (StoreUnavailable) and every old one is still there."""
    clock = FakeClock()
    store = MemoryStore(clock=clock, max_keys=10)
    for n in range(10):
        await store.increment(f"lock:{n}", ttl=60)
    with pytest.raises(StoreUnavailable, match="full"):
        await store.set_if_absent("claim:new", b"1", ttl=60)
    assert [await store.get(f"lock:{n}") for n in range(10)] == [b"1"] * 10
    assert await store.increment("lock:3") == 2  # an existing key is still written
    clock.advance(61)
    assert await store.set_if_absent("claim:new", b"1", ttl=60)


async def test_memory_store_stays_within_its_cap_under_a_million_one_off_keys():
    """A million short-lived keys (one per client, as idempotency records and lockouts are) never hold
    more than the cap, and nothing live is refused when expired keys can make room."""
    clock = FakeClock()
    store = MemoryStore(clock=clock, max_keys=1000)
    for n in range(1_000_000):
        await store.set(f"idem:{n}", b"x", ttl=0.05)
        clock.advance(0.0001)
        if n % 100_000 == 0:
            assert len(store) <= 1000
    assert len(store) <= 1000


async def test_redis_increment_of_text_is_a_value_error_not_an_outage(redis_url):
    """Incrementing a non-integer is a programming error (ValueError), not StoreUnavailable."""
    client = connect(redis_url, timeout=2.0)
    store = RedisStore(client, prefix=f"tstore:{uuid.uuid4().hex}:")
    try:
        await store.set("text", b"not a number")
        with pytest.raises(ValueError, match="not an integer"):
            await store.increment("text")
        await store.delete("text")
    finally:
        await client.aclose()


async def test_redis_burst_beyond_the_pool_waits_for_a_connection(redis_url):
    """More concurrent commands than pooled connections wait for one instead of failing."""
    client = connect(redis_url, timeout=2.0, max_connections=4)
    store = RedisStore(client, prefix=f"tstore:{uuid.uuid4().hex}:")
    try:
        results = await asyncio.gather(*[store.increment("burst") for _ in range(200)])
        assert sorted(results) == list(range(1, 201))
        await store.delete("burst")
    finally:
        await client.aclose()
