"""The rate-limit backend contract (GCRA, abuse counter, bans) over memory and real Redis, then the Limiter:
its deny cache, the store-down policies, the circuit breaker and recovery.

Time is a fake clock for the memory backend and real time on Redis (whose script reads ``TIME``);
``elapse`` hides which, so tiers use short windows.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from bastion.core.ratelimit import Limiter, MemoryRateLimitBackend, RateLimitBackend, StoreUnavailable, Tier
from bastion.core.ratelimit.redis import RedisRateLimitBackend
from bastion.core.resilience.breaker import CircuitBreaker, State
from bastion.core.stores.redis import connect
from tests.conftest import eventually, free_port
from tests.support import FakeClock

FAST = Tier("fast", limit=5, window=1)
"""Five at once, then one every 0.2 s."""
SLOW = Tier("slow", limit=5, window=3600)
"""Five at once, then one every 12 minutes: nothing refills during a test."""


@dataclass
class Backend:
    name: str
    limiter: RateLimitBackend
    elapse: Callable[[float], Awaitable[None]]


def _prefix() -> str:
    return f"trl:{uuid.uuid4().hex}:"


async def _drop(client: Any, prefix: str) -> None:
    keys = [key async for key in client.scan_iter(match=prefix + "*")]
    if keys:
        await client.delete(*keys)


@pytest.fixture(params=["memory", "redis"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    if request.param == "memory":
        clock = FakeClock()

        async def advance(seconds: float) -> None:
            clock.now += seconds

        # a small table, so the eviction-pressure tests below press on it
        yield Backend("memory", MemoryRateLimitBackend(clock=clock, max_clients=16), advance)
        return
    client = connect(request.getfixturevalue("redis_url"), timeout=2.0)
    prefix = _prefix()
    try:
        yield Backend("redis", RedisRateLimitBackend(client, prefix=prefix), asyncio.sleep)
    finally:
        await _drop(client, prefix)
        await client.aclose()


async def _burst(backend: RateLimitBackend, key: str, tier: Tier, n: int) -> list[Any]:
    return [await backend.hit(key, tier) for _ in range(n)]


# --- GCRA --------------------------------------------------------------------------------------


async def test_fresh_client_gets_a_burst_of_exactly_limit(backend):
    """A new client is allowed exactly ``limit`` requests at once, with remaining counting down to 0."""
    decisions = await _burst(backend.limiter, "c", SLOW, 6)
    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    assert [d.remaining for d in decisions[:5]] == [4, 3, 2, 1, 0]
    assert all(d.limit == 5 for d in decisions)


async def test_a_burst_at_one_instant_is_exactly_limit_for_any_interval(backend):
    """Concurrent hits get exactly ``limit`` even when window/limit has no exact binary form (3 per 2 s)."""
    for limit, window in ((3, 2), (7, 10), (9, 7)):
        tier = Tier(f"odd-{limit}-{window}", limit=limit, window=window)
        for client in range(5):
            decisions = await asyncio.gather(*(backend.limiter.hit(f"c{client}", tier) for _ in range(limit + 1)))
            assert sum(d.allowed for d in decisions) == limit
            assert sorted(d.remaining for d in decisions if d.allowed) == list(range(limit))


async def test_allowed_request_is_not_banned_and_needs_no_retry(backend):
    """An allowed decision carries no retry-after and no ban."""
    decision = await backend.limiter.hit("c", SLOW)
    assert decision.allowed and decision.retry_after == 0
    assert not decision.banned and not decision.newly_banned


async def test_reset_after_of_an_allowed_request_grows_by_one_interval_per_request(backend):
    """reset_after is the time until the whole quota is back: one emission interval per request used."""
    first, second = await _burst(backend.limiter, "c", FAST, 2)
    assert first.reset_after == pytest.approx(0.2, abs=0.02)
    assert second.reset_after == pytest.approx(0.4, abs=0.02)


async def test_denial_says_when_to_retry_and_when_the_quota_is_back(backend):
    """Past the burst, retry_after is about window/limit and reset_after about the window."""
    *_, denied = await _burst(backend.limiter, "c", FAST, 6)
    assert not denied.allowed and denied.remaining == 0 and not denied.banned
    assert denied.retry_after == pytest.approx(0.2, abs=0.05)
    assert denied.reset_after == pytest.approx(1.0, abs=0.05)
    assert denied.retry_after <= denied.reset_after


async def test_denials_do_not_consume_quota(backend):
    """Denied requests do not push the next allowed one further out."""
    await _burst(backend.limiter, "c", FAST, 5)
    denials = await _burst(backend.limiter, "c", FAST, 3)
    assert not any(d.allowed for d in denials)
    assert denials[-1].retry_after == pytest.approx(0.2, abs=0.05)


async def test_one_more_request_is_allowed_after_the_emission_interval(backend):
    """After waiting window/limit, exactly one more request is allowed."""
    *_, denied = await _burst(backend.limiter, "c", FAST, 6)
    await backend.elapse(denied.retry_after + 0.02)
    again = await _burst(backend.limiter, "c", FAST, 2)
    assert [d.allowed for d in again] == [True, False]
    assert again[0].remaining == 0


async def test_the_whole_burst_is_back_after_the_window(backend):
    """After a full window without requests the client has its full burst again."""
    await _burst(backend.limiter, "c", FAST, 6)
    await backend.elapse(1.05)
    decisions = await _burst(backend.limiter, "c", FAST, 6)
    assert [d.allowed for d in decisions] == [True] * 5 + [False]
    assert decisions[0].remaining == 4


async def test_different_keys_are_limited_independently(backend):
    """Exhausting one client's quota leaves another client's untouched."""
    await _burst(backend.limiter, "a", SLOW, 6)
    other = await backend.limiter.hit("b", SLOW)
    assert other.allowed and other.remaining == 4


async def test_different_tiers_are_limited_independently(backend):
    """Exhausting one tier leaves the same client's quota in another tier untouched."""
    await _burst(backend.limiter, "c", SLOW, 6)
    other = await backend.limiter.hit("c", Tier("other", limit=3, window=3600))
    assert other.allowed and other.remaining == 2


async def test_keys_with_awkward_characters_are_limited_like_any_other(backend):
    """Keys with braces, colons and spaces work and stay separate from plain keys."""
    awkward = "user:{a} b:c}"
    await _burst(backend.limiter, awkward, SLOW, 6)
    assert not (await backend.limiter.hit(awkward, SLOW)).allowed
    assert (await backend.limiter.hit("user:a", SLOW)).allowed


async def test_concurrent_hits_never_exceed_the_limit(backend):
    """200 concurrent hits at limit 50 allow exactly 50."""
    tier = Tier("crowd", limit=50, window=3600)
    decisions = await asyncio.gather(*(backend.limiter.hit("c", tier) for _ in range(200)))
    assert sum(d.allowed for d in decisions) == 50


async def test_reset_gives_the_client_its_full_burst_again(backend):
    """reset clears the tier's state for the client."""
    await _burst(backend.limiter, "c", SLOW, 6)
    await backend.limiter.reset("c", SLOW)
    decisions = await _burst(backend.limiter, "c", SLOW, 6)
    assert [d.allowed for d in decisions] == [True] * 5 + [False]


async def test_reset_touches_only_the_named_tier(backend):
    """reset of one tier leaves the client's other tiers exhausted."""
    other = Tier("other", limit=2, window=3600)
    await _burst(backend.limiter, "c", SLOW, 6)
    await _burst(backend.limiter, "c", other, 3)
    await backend.limiter.reset("c", SLOW)
    assert not (await backend.limiter.hit("c", other)).allowed


async def test_ping_answers_when_the_store_is_up(backend):
    """ping returns without error on a reachable backend."""
    assert await backend.limiter.ping() is None


# --- abuse counter and bans --------------------------------------------------------------------

BANNING = Tier("banning", limit=5, window=3600, ban_threshold=8, ban_seconds=60)


async def test_attempts_reaching_the_threshold_ban_the_client(backend):
    """The attempt that reaches ban_threshold is refused as a new ban lasting ban_seconds."""
    decisions = await _burst(backend.limiter, "c", BANNING, 8)
    assert not any(d.banned for d in decisions[:7])
    ban = decisions[7]
    assert not ban.allowed and ban.banned and ban.newly_banned
    assert ban.retry_after == pytest.approx(60, abs=0.5)
    assert ban.reset_after == pytest.approx(60, abs=0.5)


async def test_a_banned_client_is_refused_without_a_new_ban(backend):
    """Hits after the ban are banned, not newly banned, with retry_after counting down from ban_seconds."""
    await _burst(backend.limiter, "c", BANNING, 8)
    after = await _burst(backend.limiter, "c", BANNING, 3)
    assert all(d.banned and not d.allowed and not d.newly_banned for d in after)
    assert all(59 <= d.retry_after <= 60 for d in after)
    assert after[0].remaining == 0


async def test_a_ban_applies_to_every_tier_of_the_client(backend):
    """Once banned in one tier, the client is refused in a tier it never used."""
    await _burst(backend.limiter, "c", BANNING, 8)
    other = await backend.limiter.hit("c", Tier("fresh", limit=100, window=60))
    assert other.banned and not other.allowed
    assert other.retry_after == pytest.approx(60, abs=1)


async def test_a_ban_does_not_touch_other_clients(backend):
    """Banning one client leaves another allowed."""
    await _burst(backend.limiter, "c", BANNING, 8)
    assert (await backend.limiter.hit("d", BANNING)).allowed


async def test_a_tier_without_threshold_never_bans(backend):
    """With ban_threshold 0 any number of attempts only gets rate-limit denials."""
    decisions = await _burst(backend.limiter, "c", SLOW, 40)
    assert not any(d.banned for d in decisions)


async def test_attempts_below_the_threshold_within_a_window_do_not_ban(backend):
    """The abuse counter starts again with each window, so attempts spread over windows do not ban."""
    tier = Tier("spread", limit=5, window=1, ban_threshold=8, ban_seconds=60)
    await _burst(backend.limiter, "c", tier, 7)
    await backend.elapse(1.05)
    later = await _burst(backend.limiter, "c", tier, 7)
    assert not any(d.banned for d in later)


async def test_a_ban_ends_after_ban_seconds(backend):
    """Once ban_seconds have passed the client is no longer banned."""
    tier = Tier("short-ban", limit=5, window=3600, ban_threshold=6, ban_seconds=1)
    *_, ban = await _burst(backend.limiter, "c", tier, 6)
    assert ban.newly_banned
    await backend.elapse(1.05)
    assert not (await backend.limiter.hit("c", tier)).banned


async def test_unban_lifts_the_ban(backend):
    """After unban the client is no longer banned, in any tier."""
    await _burst(backend.limiter, "c", BANNING, 8)
    await backend.limiter.unban("c")
    assert not (await backend.limiter.hit("c", BANNING)).banned
    assert (await backend.limiter.hit("c", Tier("fresh", limit=3, window=60))).allowed


async def test_unban_of_a_client_never_banned_is_harmless(backend):
    """unban of a client with no ban does nothing."""
    await backend.limiter.unban("nobody")
    assert (await backend.limiter.hit("nobody", BANNING)).allowed


async def test_reset_does_not_lift_a_ban(backend):
    """Resetting a tier clears its quota but not the client's ban."""
    await _burst(backend.limiter, "c", BANNING, 8)
    await backend.limiter.reset("c", BANNING)
    assert (await backend.limiter.hit("c", BANNING)).banned


async def test_extra_attempts_count_towards_the_ban(backend):
    """A hit carrying extra_attempts counts them too, and reaching the threshold bans."""
    first = await backend.limiter.hit("c", BANNING, extra_attempts=6)
    assert first.allowed and not first.banned
    second = await backend.limiter.hit("c", BANNING)
    assert second.banned and second.newly_banned


async def test_extra_attempts_do_not_consume_quota(backend):
    """extra_attempts feed only the abuse counter, not the GCRA quota."""
    decision = await backend.limiter.hit("c", Tier("q", limit=5, window=3600, ban_threshold=100), extra_attempts=10)
    assert decision.allowed and decision.remaining == 4


async def test_concurrent_floods_ban_exactly_once(backend):
    """Of many concurrent hits past the threshold exactly one reports a new ban."""
    decisions = await asyncio.gather(*(backend.limiter.hit("c", BANNING) for _ in range(50)))
    assert sum(d.newly_banned for d in decisions) == 1
    assert sum(d.allowed for d in decisions) == 5


# --- eviction pressure: a bounded table never loosens a limit ---------------------------------


async def test_no_limit_is_loosened_by_a_flood_of_new_clients(backend):
    """An exhausted client stays limited, and nobody gets more than the limit, while 200 new clients
    (more than the in-process table holds) arrive between its attempts."""
    await _burst(backend.limiter, "victim", SLOW, 5)
    allowed: dict[str, int] = {}
    for i in range(200):
        for _ in range(2 if i % 10 == 0 else 1):
            decision = await backend.limiter.hit(f"new{i}", SLOW)
            allowed[f"new{i}"] = allowed.get(f"new{i}", 0) + decision.allowed
        if i % 20 == 0:
            assert not (await backend.limiter.hit("victim", SLOW)).allowed
    assert max(allowed.values()) <= SLOW.limit
    assert not (await backend.limiter.hit("victim", SLOW)).allowed


async def test_no_ban_is_lifted_by_a_flood_of_new_clients(backend):
    """A banned client stays banned while 200 new clients arrive."""
    await _burst(backend.limiter, "villain", BANNING, 8)
    for i in range(200):
        await backend.limiter.hit(f"new{i}", BANNING)
    assert (await backend.limiter.hit("villain", BANNING)).banned


async def test_no_abuse_count_is_forgotten_under_pressure(backend):
    """Attempts counted towards a ban still count after 200 new clients arrived: the next ones ban."""
    await _burst(backend.limiter, "c", BANNING, 6)
    for i in range(200):
        await backend.limiter.hit(f"new{i}", BANNING)
    *_, last = await _burst(backend.limiter, "c", BANNING, 2)
    assert last.newly_banned


# --- Redis across instances --------------------------------------------------------------------


async def test_two_instances_share_one_limit_over_redis(redis_url):
    """Two app instances (separate clients) firing 200 concurrent hits at limit 50 allow exactly 50 in total."""
    prefix = _prefix()
    clients = [connect(redis_url, timeout=2.0), connect(redis_url, timeout=2.0)]
    backends = [RedisRateLimitBackend(c, prefix=prefix) for c in clients]
    tier = Tier("shared", limit=50, window=3600)
    try:
        decisions = await asyncio.gather(*(backends[i % 2].hit("c", tier) for i in range(200)))
        assert sum(d.allowed for d in decisions) == 50
        assert sorted(d.remaining for d in decisions if d.allowed) == list(range(50))
    finally:
        await _drop(clients[0], prefix)
        for client in clients:
            await client.aclose()


async def test_a_ban_from_one_instance_holds_on_another(redis_url):
    """A client banned through one Redis client is banned for another instance too."""
    prefix = _prefix()
    clients = [connect(redis_url, timeout=2.0), connect(redis_url, timeout=2.0)]
    one, two = (RedisRateLimitBackend(c, prefix=prefix) for c in clients)
    try:
        await _burst(one, "c", BANNING, 8)
        assert (await two.hit("c", SLOW)).banned
    finally:
        await _drop(clients[0], prefix)
        for client in clients:
            await client.aclose()


@pytest.mark.parametrize("call", ["hit", "ping"])
async def test_redis_backend_that_cannot_connect_raises_store_unavailable(call):
    """A backend pointed at a port where nothing listens raises StoreUnavailable, not a redis error."""
    client = connect(f"redis://127.0.0.1:{free_port()}/0", timeout=2.0)
    backend = RedisRateLimitBackend(client, prefix="tdead:")
    try:
        with pytest.raises(StoreUnavailable):
            await (backend.hit("c", SLOW) if call == "hit" else backend.ping())
    finally:
        await client.aclose()


# --- Limiter -----------------------------------------------------------------------------------


class Counting:
    """A backend wrapper that records every hit it passes on (not a MemoryRateLimitBackend: 'shared')."""

    def __init__(self, inner: RateLimitBackend) -> None:
        self.inner = inner
        self.extras: list[int] = []

    @property
    def calls(self) -> int:
        return len(self.extras)

    async def hit(self, key: str, tier: Tier, *, extra_attempts: int = 0) -> Any:
        self.extras.append(extra_attempts)
        return await self.inner.hit(key, tier, extra_attempts=extra_attempts)

    async def unban(self, key: str) -> None:
        await self.inner.unban(key)

    async def reset(self, key: str, tier: Tier) -> None:
        await self.inner.reset(key, tier)

    async def ping(self) -> None:
        await self.inner.ping()

    async def close(self) -> None:
        await self.inner.close()


@pytest.fixture
async def shared(redis_url: str) -> AsyncIterator[Counting]:
    """A counting wrapper around a real Redis backend with a private prefix."""
    client = connect(redis_url, timeout=2.0)
    prefix = _prefix()
    try:
        yield Counting(RedisRateLimitBackend(client, prefix=prefix))
    finally:
        await _drop(client, prefix)
        await client.aclose()


@pytest.fixture
async def dead() -> AsyncIterator[Counting]:
    """A counting wrapper around a Redis backend pointed at a port where nothing listens."""
    client = connect(f"redis://127.0.0.1:{free_port()}/0", timeout=0.5)
    try:
        yield Counting(RedisRateLimitBackend(client, prefix="tdead:"))
    finally:
        await client.aclose()


def _breaker(threshold: int = 3, reset_timeout: float = 60.0) -> CircuitBreaker:
    return CircuitBreaker(
        f"test-rl-{uuid.uuid4().hex[:8]}",
        failure_threshold=threshold,
        reset_timeout=reset_timeout,
        is_failure=lambda exc: isinstance(exc, StoreUnavailable),
    )


THREE = Tier("three", limit=3, window=3600, ban_threshold=10, ban_seconds=60)
OPEN = Tier("open", limit=2, window=3600)
CLOSED = Tier("closed", limit=2, window=3600, fail_closed=True)
TIERS = {t.name: t for t in (THREE, OPEN, CLOSED, FAST)}


async def test_limiter_answers_from_the_store_while_allowed(shared):
    """Allowed requests each go to the shared store."""
    limiter = Limiter(shared, TIERS, breaker=_breaker())
    verdicts = [await limiter.check("three", "c") for _ in range(3)]
    assert [v.source for v in verdicts] == ["store"] * 3
    assert [v.decision.remaining for v in verdicts] == [2, 1, 0]
    assert shared.calls == 3


async def test_deny_cache_answers_repeat_denials_without_the_store(shared):
    """After a denial from the store, further checks inside the retry window are denied from the cache."""
    limiter = Limiter(shared, TIERS, breaker=_breaker())
    for _ in range(4):
        await limiter.check("three", "c")
    assert shared.calls == 4
    cached = [await limiter.check("three", "c") for _ in range(2)]
    assert shared.calls == 4
    assert all(v.source == "cache" and not v.decision.allowed and not v.decision.banned for v in cached)
    assert all(0 < v.decision.retry_after <= 1200 for v in cached)


async def test_deny_cache_passes_absorbed_attempts_on_as_extra_attempts(shared):
    """After limit-1 absorbed attempts the next check goes to the store carrying them as extra_attempts."""
    limiter = Limiter(shared, TIERS, breaker=_breaker())
    verdicts = [await limiter.check("three", "c") for _ in range(7)]
    assert [v.source for v in verdicts] == ["store"] * 4 + ["cache"] * 2 + ["store"]
    assert shared.extras == [0, 0, 0, 0, 2]


async def test_a_flood_is_banned_at_the_threshold_despite_the_deny_cache(shared):
    """Attempts absorbed by the cache still count, so the flood is banned at exactly ban_threshold attempts."""
    limiter = Limiter(shared, TIERS, breaker=_breaker())
    verdicts = [await limiter.check("three", "c") for _ in range(10)]
    assert not any(v.decision.banned for v in verdicts[:9])
    assert verdicts[9].decision.newly_banned and verdicts[9].source == "store"
    assert shared.calls < 10


async def test_a_banned_client_is_answered_from_the_cache(shared):
    """Once banned, every further check is a cached ban with no store round trip."""
    limiter = Limiter(shared, TIERS, breaker=_breaker())
    for _ in range(10):
        await limiter.check("three", "c")
    calls = shared.calls
    after = [await limiter.check("three", "c") for _ in range(20)]
    assert shared.calls == calls
    assert all(v.source == "cache" and v.decision.banned for v in after)
    assert all(59 <= v.decision.retry_after <= 60 for v in after)


async def test_deny_cache_expires_with_the_retry_window(shared):
    """Once the retry window has passed the next check goes to the store again and is allowed."""
    limiter = Limiter(shared, TIERS, breaker=_breaker())
    *_, denied = [await limiter.check("fast", "c") for _ in range(6)]
    assert denied.source == "store" and not denied.decision.allowed
    await asyncio.sleep(denied.decision.retry_after + 0.02)
    again = await limiter.check("fast", "c")
    assert again.source == "store" and again.decision.allowed


async def test_deny_cache_is_per_client(shared):
    """A cached denial of one client does not deny another."""
    limiter = Limiter(shared, TIERS, breaker=_breaker())
    for _ in range(4):
        await limiter.check("three", "c")
    other = await limiter.check("three", "d")
    assert other.source == "store" and other.decision.allowed


async def test_an_in_process_backend_is_never_cached():
    """With a memory backend every check is the backend's own decision (nothing to save)."""
    limiter = Limiter(MemoryRateLimitBackend(), TIERS)
    verdicts = [await limiter.check("three", "c") for _ in range(6)]
    assert [v.source for v in verdicts] == ["store"] * 6
    assert [v.decision.allowed for v in verdicts] == [True] * 3 + [False] * 3


async def test_store_down_fail_open_tier_falls_back_to_the_in_process_limiter(dead):
    """With the store unreachable a fail-open tier is still limited, by the in-process fallback."""
    limiter = Limiter(dead, TIERS, breaker=_breaker())
    verdicts = [await limiter.check("open", "c") for _ in range(3)]
    assert [v.source for v in verdicts] == ["fallback"] * 3
    assert [v.decision.allowed for v in verdicts] == [True, True, False]


async def test_store_down_fail_closed_tier_refuses(dead):
    """With the store unreachable a fail-closed tier has no decision: source 'closed'."""
    limiter = Limiter(dead, TIERS, breaker=_breaker())
    verdict = await limiter.check("closed", "c")
    assert verdict.decision is None and verdict.source == "closed"


async def test_breaker_stops_calling_a_dead_store(dead):
    """After failure_threshold failures the store is no longer called while the breaker is open."""
    limiter = Limiter(dead, TIERS, breaker=_breaker(threshold=3))
    verdicts = [await limiter.check("open", f"c{i}") for i in range(10)]
    assert dead.calls == 3
    assert limiter.breaker.state is State.OPEN
    assert all(v.source == "fallback" for v in verdicts)


async def test_default_breaker_opens_on_a_dead_store(dead):
    """The Limiter's own breaker counts StoreUnavailable as failure and opens after a few."""
    limiter = Limiter(dead, TIERS)
    for i in range(10):
        await limiter.check("closed", f"c{i}")
    assert limiter.breaker.state is State.OPEN
    assert dead.calls == limiter.breaker.failure_threshold < 10


async def test_limiter_uses_the_store_again_after_it_recovers(private_redis):
    """When Redis comes back, the limiter goes back to the store once the breaker's reset timeout passed."""
    client = connect(private_redis.url, timeout=0.5)
    backend = Counting(RedisRateLimitBackend(client, prefix=_prefix()))
    limiter = Limiter(backend, TIERS, breaker=_breaker(threshold=2, reset_timeout=0.2))
    try:
        assert (await limiter.check("open", "c")).source == "store"
        private_redis.stop()
        down = [await limiter.check("open", "c") for _ in range(5)]
        assert [v.source for v in down] == ["fallback"] * 5
        assert limiter.breaker.state is State.OPEN
        calls_while_down = backend.calls
        assert calls_while_down == 3  # one before the outage, two failures, then the breaker opened

        private_redis.start()

        async def back() -> bool:
            verdict = await limiter.check("open", "c")
            return bool(verdict.source == "store")

        await eventually(back, timeout=5)
        assert limiter.breaker.state is State.CLOSED
        assert backend.calls > calls_while_down
    finally:
        await client.aclose()


async def test_a_fail_closed_tier_answers_again_after_recovery(private_redis):
    """A fail-closed tier refuses while the store is down and gets decisions again once it is back."""
    client = connect(private_redis.url, timeout=0.5)
    limiter = Limiter(
        RedisRateLimitBackend(client, prefix=_prefix()), TIERS, breaker=_breaker(threshold=1, reset_timeout=0.2)
    )
    try:
        private_redis.stop()
        assert (await limiter.check("closed", "c")).source == "closed"
        private_redis.start()

        async def decided() -> bool:
            verdict = await limiter.check("closed", "c")
            return verdict.source == "store" and verdict.decision is not None and verdict.decision.allowed

        await eventually(decided, timeout=5)
    finally:
        await client.aclose()


async def test_redis_keys_with_braces_and_parentheses_stay_distinct(redis_url):
    """Client keys that differ only in braces vs parentheses never share a limit (hash-tag escaping)."""
    client = connect(redis_url, timeout=2.0)
    backend = RedisRateLimitBackend(client, prefix=f"trl:{uuid.uuid4().hex}:")
    tier = Tier("t", limit=1, window=60)
    try:
        assert (await backend.hit("a{b}", tier)).allowed
        assert (await backend.hit("a(b)", tier)).allowed
        assert not (await backend.hit("a{b}", tier)).allowed
    finally:
        await client.aclose()
