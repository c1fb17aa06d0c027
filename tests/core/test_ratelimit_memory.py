"""The in-process limiter's bounded memory: a hard cap per tier, eviction of states equivalent to absent,
IPv6 counted by /64 under pressure, refusal when nothing may be forgotten, bans bounded the same way."""

from __future__ import annotations

import uuid

import pytest
from prometheus_client import REGISTRY

from bastion.core.bounded import BoundedTable
from bastion.core.ratelimit import Limiter, MemoryRateLimitBackend, Tier
from bastion.core.ratelimit.memory import net64
from tests.support import FakeClock

SLOW = Tier("slow", limit=5, window=3600)
FAST = Tier("fast", limit=5, window=1)
BANNING = Tier("banning", limit=2, window=3600, ban_threshold=3, ban_seconds=600)
ELSEWHERE = Tier("elsewhere", limit=2, window=3600, ban_threshold=3, ban_seconds=600)
"""Bans earned here fill the ban table without filling the ``banning`` tier's table."""


def _backend(cap: int = 4) -> tuple[MemoryRateLimitBackend, FakeClock]:
    clock = FakeClock()
    return MemoryRateLimitBackend(clock=clock, max_clients=cap), clock


async def test_memory_stays_within_the_cap_whatever_the_number_of_clients():
    """10,000 distinct clients, each within its window, never hold more than the cap (plus the groups)."""
    backend, clock = _backend(cap=100)
    for i in range(10_000):
        await backend.hit(f"ip:10.{i // 65536}.{i // 256 % 256}.{i % 256}", FAST)
        await backend.hit(f"ip:2001:db8:{i:x}::1", FAST)
        clock.now += 0.001
    assert backend.size() <= 100 + 25


async def test_states_equivalent_to_absent_make_room_for_new_clients():
    """Once a client's quota is full again and its abuse window over, its slot goes to a new client."""
    backend, clock = _backend(cap=4)
    for round_ in range(50):
        decisions = [await backend.hit(f"ip:10.0.{round_}.{i}", FAST) for i in range(4)]
        assert all(d.allowed for d in decisions)
        clock.now += 1.01
    assert backend.refused == 0 and backend.size() == 4


async def test_a_new_ipv4_client_is_refused_while_every_state_still_limits():
    """With the table full of live states a new IPv4 client is refused (429) until the oldest runs out."""
    backend, clock = _backend(cap=4)
    for i in range(4):
        await backend.hit(f"ip:10.0.0.{i}", FAST)
    before = REGISTRY.get_sample_value("bastion_ratelimit_table_full_total", {"tier": "fast"}) or 0
    refused = await backend.hit("ip:10.0.0.99", FAST)
    assert not refused.allowed and not refused.banned and refused.retry_after >= 1
    assert backend.refused == 1
    assert REGISTRY.get_sample_value("bastion_ratelimit_table_full_total", {"tier": "fast"}) == before + 1
    clock.now += 1.01
    assert (await backend.hit("ip:10.0.0.99", FAST)).allowed


async def test_under_pressure_new_ipv6_addresses_share_their_64():
    """With the table full, ten new addresses of one /64 get one burst between them, not ten."""
    backend, _ = _backend(cap=4)
    for i in range(4):
        await backend.hit(f"ip:10.0.0.{i}", SLOW)
    decisions = [await backend.hit(f"ip:2001:db8:1:2::{i:x}", SLOW) for i in range(1, 11)]
    assert sum(d.allowed for d in decisions) == SLOW.limit
    assert backend.refused == 0


async def test_under_pressure_each_64_is_counted_separately():
    """Two /64s under pressure are two groups, each with its own burst."""
    backend, _ = _backend(cap=8)  # two groups
    for i in range(8):
        await backend.hit(f"ip:10.0.0.{i}", SLOW)
    first = [await backend.hit(f"ip:2001:db8:0:1::{i:x}", SLOW) for i in range(1, 7)]
    second = [await backend.hit(f"ip:2001:db8:0:2::{i:x}", SLOW) for i in range(1, 7)]
    assert sum(d.allowed for d in first) == sum(d.allowed for d in second) == SLOW.limit


async def test_an_ipv6_address_tracked_before_the_pressure_keeps_its_own_state():
    """An address exhausted before its /64 was grouped stays exhausted; its neighbours share the group."""
    backend, _ = _backend(cap=4)
    await _exhaust(backend, "ip:2001:db8::1", SLOW)
    for i in range(3):
        await backend.hit(f"ip:10.0.0.{i}", SLOW)
    assert (await backend.hit("ip:2001:db8::2", SLOW)).allowed  # the group's first
    assert not (await backend.hit("ip:2001:db8::1", SLOW)).allowed


async def test_when_the_groups_are_full_too_a_new_64_is_refused():
    """Past the cap and the groups' quarter of it, a further /64 is refused rather than a state forgotten."""
    backend, _ = _backend(cap=4)  # one group
    for i in range(4):
        await backend.hit(f"ip:10.0.0.{i}", SLOW)
    assert (await backend.hit("ip:2001:db8:0:1::1", SLOW)).allowed
    refused = await backend.hit("ip:2001:db8:0:2::1", SLOW)
    assert not refused.allowed and backend.refused == 1


async def test_a_ban_finding_the_ban_table_full_is_held_in_the_tier():
    """With every ban slot taken by a running ban, a new ban still holds for its whole length."""
    backend, clock = _backend(cap=2)
    for i in range(2):
        await _exhaust(backend, f"ip:10.0.0.{i}", ELSEWHERE, hits=3)
    *_, ban = await _exhaust(backend, "ip:10.0.0.9", BANNING, hits=3)
    assert ban.newly_banned
    clock.now += 599
    assert (await backend.hit("ip:10.0.0.9", BANNING)).banned
    clock.now += 1.1
    assert not (await backend.hit("ip:10.0.0.9", BANNING)).banned  # over; the quota still limits it


async def test_an_ipv6_ban_finding_the_ban_table_full_bans_the_64():
    """With the ban table full, banning an IPv6 address bans its /64 in every tier."""
    backend, _ = _backend(cap=2)
    for i in range(2):
        await _exhaust(backend, f"ip:10.0.0.{i}", ELSEWHERE, hits=3)
    await _exhaust(backend, "ip:2001:db8::1", BANNING, hits=3)
    assert (await backend.hit("ip:2001:db8::77", FAST)).banned


async def test_unban_lifts_a_ban_held_in_the_tier():
    """unban also lifts a ban that had to be kept in the tier's state."""
    backend, _ = _backend(cap=2)
    for i in range(2):
        await _exhaust(backend, f"ip:10.0.0.{i}", ELSEWHERE, hits=3)
    await _exhaust(backend, "ip:10.0.0.9", BANNING, hits=3)
    await backend.unban("ip:10.0.0.9")
    assert not (await backend.hit("ip:10.0.0.9", BANNING)).banned


def test_net64_groups_ipv6_keys_only():
    """Only ``ip:`` keys holding an IPv6 address have a /64; the same /64 in any spelling is one group."""
    assert net64("ip:2001:db8::1") == net64("ip:2001:0db8:0:0:ffff::2") == "ip6/64:2001:db8:0:0:"
    assert net64("ip:2001:db8:0:0:ffff::2") == "ip6/64:2001:db8:0:0:"
    assert net64("ip:10.0.0.1") is None
    assert net64("user:abc:def") is None
    assert net64("ip:not:an:address") is None
    assert net64("ip:2001:DB8::") == net64("ip:2001:db8:0:0:1:2:3:4") == net64("ip:2001:db8::1.2.3.4")
    assert net64("ip:fe80::1%eth0") == "ip6/64:fe80:0:0:0:"
    assert net64("ip:2001:db8:1:2::") == net64("ip:2001:DB8:1:2:0:0:0:9") == "ip6/64:2001:db8:1:2:"
    for bad in ("ip:1::2::3", "ip:12345::1", "ip:1:2:3", "ip:1::2:3:4:5:6:7:8"):
        assert net64(bad) is None, bad


async def test_the_deny_cache_is_bounded_and_denials_it_drops_are_still_denied(redis_url):
    """The limiter's deny cache holds at most its cap; a client whose denial was not cached is denied
    by the store."""
    from bastion.core.ratelimit.redis import RedisRateLimitBackend
    from bastion.core.stores.redis import connect

    client = connect(redis_url, timeout=2.0)
    prefix = f"trlb:{uuid.uuid4().hex}:"
    limiter = Limiter(RedisRateLimitBackend(client, prefix=prefix), {"slow": SLOW}, max_clients=3)
    try:
        for i in range(10):
            for _ in range(6):
                await limiter.check("slow", f"c{i}")
        assert len(limiter._denials) <= 3
        again = [await limiter.check("slow", f"c{i}") for i in range(10)]
        assert all(v.decision is not None and not v.decision.allowed for v in again)
    finally:
        keys = [k async for k in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()


def test_bounded_table_gives_live_entries_a_second_chance():
    """Making room skips an entry that may not go (moving it to the end) and drops one that may."""
    table: BoundedTable[str, float] = BoundedTable(3, forgettable=lambda until, now: until <= now)
    table.put("live", 100.0, 0.0)
    table.put("dead", 1.0, 0.0)
    table.put("other", 100.0, 0.0)
    assert table.put("new", 100.0, 50.0)
    assert list(table) == ["other", "live", "new"]
    assert not table.put("refused", 100.0, 50.0)
    assert "refused" not in table


def test_bounded_table_refuses_a_cap_below_one():
    """A cap of zero is a configuration error, not a table that refuses everything."""
    with pytest.raises(ValueError, match="at least 1"):
        BoundedTable(0)


async def _exhaust(backend: MemoryRateLimitBackend, key: str, tier: Tier, hits: int = 6) -> list[object]:
    return [await backend.hit(key, tier) for _ in range(hits)]
