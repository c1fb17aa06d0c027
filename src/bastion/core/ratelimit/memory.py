"""In-process rate-limit backend: the embedded default, and the fallback while Redis is down.

Atomic because each ``hit`` runs to completion on the event loop without awaiting in between; it is
per process, so with several workers it limits each worker separately (use Redis to share).

Memory is bounded by count, whatever the arrival rate of new addresses: per tier at most
``max_clients`` client states (50,000 by default), plus at most ``max_clients // 4`` IPv6 /64 groups, and at most
``max_clients`` bans (``core.bounded.BoundedTable``, least recently seen first out, O(1) per decision).

Eviction never loosens a limit. A client's state (GCRA time, abuse count, a ban kept in the tier) is
dropped only once it is *equivalent to absent*: its quota is full again (TAT <= now), its abuse
window has ended and no ban it holds is running, so the client is treated exactly as if it were
remembered. When the table is full and every entry tried still limits someone, the backend does not
forget one; it gets coarser instead:

* an IPv6 client is counted with its /64 (what one subscriber gets): all new addresses of that /64
  share one state, which is tighter than one each, never looser; an address already tracked keeps
  its own state until that is equivalent to absent;
* any other new client (IPv4, a principal) is refused until the oldest state runs out: a refusal is
  a 429 with Retry-After, never a limit lifted (counted in ``bastion_ratelimit_table_full_total``: raise
  ``ADMISSION__MEMORY_MAX_CLIENTS`` or move the limiter to Redis when it grows);
* a new ban that finds the ban table full is kept in the banning tier's own state (which then stays
  until the ban ends) or, for IPv6, as a ban of the /64.
"""

from __future__ import annotations

import ipaddress
import math
import re
import time
from collections.abc import Callable

from bastion.core import metrics
from bastion.core.bounded import BoundedTable
from bastion.core.ratelimit.base import Decision, Tier


class _State:
    """One client in one tier: its GCRA time, its abuse window and count, and a ban kept here when the
    ban table was full. (About 100 bytes with its floats; the table's entry and the key as much again.)"""

    __slots__ = ("ban_until", "count", "tat", "window_end")

    def __init__(self) -> None:
        self.tat = 0.0
        self.window_end = 0.0
        self.count = 0
        self.ban_until = 0.0


def _gone(state: _State, now: float) -> bool:
    """Equivalent to absent: the quota is full again, the abuse window over, no ban held here running."""
    return state.tat <= now and state.window_end <= now and state.ban_until <= now


def _over(until: float, now: float) -> bool:
    return until <= now


_PREFIX64 = re.compile(r"(?:(?:0|[1-9a-f][0-9a-f]{0,3}):){4}")
"""Four groups as RFC 5952 writes them (lower case, no leading zeros), each followed by a colon."""


def net64(key: str) -> str | None:
    """``ip6/64:<the first four groups>:`` for a key ``ip:<IPv6 address>``; None for anything else.

    The address as the edge writes it (RFC 5952, from the socket or ``ipaddress``) starts with its /64
    spelled out whenever no ``::`` falls inside it: one regex match, a tenth of what ``ipaddress``
    costs (3-5 µs, paid by every new client under pressure). Any other spelling goes to ``ipaddress``.
    The address past the /64 is not checked: keys come from the edge, which holds a real address."""
    if not key.startswith("ip:") or ":" not in key[3:]:
        return None
    found = _PREFIX64.match(key, 3)
    if found is not None:
        return "ip6/64:" + found.group()
    try:
        value = int(ipaddress.IPv6Address(key[3:])) >> 64
    except ValueError:
        return None
    return "ip6/64:" + "".join(f"{value >> shift & 0xFFFF:x}:" for shift in (48, 32, 16, 0))


class _TierTable:
    __slots__ = ("full_counter", "groups", "retry_at", "states")

    def __init__(self, tier: str, max_clients: int) -> None:
        self.full_counter = metrics.ratelimit_table_full.labels(tier)
        self.retry_at = 0.0
        self.states: BoundedTable[str, _State] = BoundedTable(max_clients, forgettable=_gone)
        self.groups: BoundedTable[str, _State] = BoundedTable(max(1, max_clients // 4), forgettable=_gone)


class MemoryRateLimitBackend:
    def __init__(self, *, clock: Callable[[], float] = time.time, max_clients: int = 50_000) -> None:
        self.clock = clock
        self.max_clients = max_clients
        self._tables: dict[str, _TierTable] = {}
        self._bans: BoundedTable[str, float] = BoundedTable(max_clients, forgettable=_over)
        self._group_bans: BoundedTable[str, float] = BoundedTable(max(1, max_clients // 4), forgettable=_over)
        self.refused = 0
        """New clients refused because every state in the table still limited someone."""

    async def hit(self, key: str, tier: Tier, *, extra_attempts: int = 0) -> Decision:
        now = self.clock()
        ban_until = self._ban_of(key, now)
        if ban_until:
            return Decision(False, tier.limit, 0, ban_until - now, ban_until - now, banned=True)

        state = self._state(key, tier, now)
        if state is None:  # full of live states and no coarser place: refuse, never forget
            self.refused += 1
            self._tables[tier.name].full_counter.inc()
            return self._refusal(tier, now)
        if state.ban_until > now:
            wait = state.ban_until - now
            return Decision(False, tier.limit, 0, wait, wait, banned=True)

        if now >= state.window_end:
            state.window_end, state.count = now + tier.window, 0
        state.count += 1 + extra_attempts
        if tier.ban_threshold and state.count >= tier.ban_threshold:
            state.window_end, state.count = 0.0, 0
            self._ban(key, state, now + tier.ban_seconds, now)
            return Decision(False, tier.limit, 0, tier.ban_seconds, tier.ban_seconds, banned=True, newly_banned=True)

        interval = tier.window / tier.limit
        tat = max(state.tat, now)
        new_tat = tat + interval
        allow_at = new_tat - tier.window
        # tat accumulates float rounding (ulp ~2e-7 near 1.7e9 s): compare with half a millisecond of slack,
        # as the Redis backend does, or hits at one instant can get limit - 1 and remaining -1
        slack = min(0.0005, interval / 2)
        if allow_at - now > slack:
            return Decision(False, tier.limit, 0, tat - now, allow_at - now)
        state.tat = new_tat
        remaining = math.floor((tier.window - (new_tat - now) + slack) / interval)
        return Decision(True, tier.limit, remaining, new_tat - now)

    async def unban(self, key: str) -> None:
        self._bans.pop(key)
        group = net64(key)
        if group is not None:
            self._group_bans.pop(group)
        for table in self._tables.values():
            for state in (table.states.peek(key), table.groups.peek(group) if group else None):
                if state is not None:
                    state.ban_until = 0.0

    async def reset(self, key: str, tier: Tier) -> None:
        table = self._tables.get(tier.name)
        state = table.states.peek(key) if table else None
        if state is not None:  # the quota and the abuse count go; a ban kept in the state stays
            state.tat = state.window_end = 0.0
            state.count = 0

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def size(self) -> int:
        """Client states, groups and bans held now (for tests and benchmarks)."""
        tables = sum(len(t.states) + len(t.groups) for t in self._tables.values())
        return tables + len(self._bans) + len(self._group_bans)

    # --- where a client's state lives ---------------------------------------------------------------

    def _state(self, key: str, tier: Tier, now: float) -> _State | None:
        table = self._tables.get(tier.name)
        if table is None:
            table = self._tables[tier.name] = _TierTable(tier.name, self.max_clients)
        state = table.states.get(key)
        if state is not None:
            return state
        group = net64(key) if table.groups else None
        if group is not None:
            state = table.groups.get(group)
            if state is not None:  # this /64 is already counted as one: join it
                return state
        if not table.states.full(now):
            state = _State()
            if table.states.put(key, state, now):
                return state
        group = group or net64(key)
        if group is not None and not table.groups.full(now):
            state = _State()
            if table.groups.put(group, state, now):
                return state
        return None

    def _ban_of(self, key: str, now: float) -> float:
        until = self._bans.peek(key)
        if until is None and self._group_bans:
            group = net64(key)
            until = self._group_bans.peek(group) if group else None
        return until if until is not None and until > now else 0.0

    def _ban(self, key: str, state: _State, until: float, now: float) -> None:
        if self._bans.put(key, until, now):
            return
        group = net64(key)
        if group is None or not self._group_bans.put(group, until, now):
            state.ban_until = until  # the ban table is full of running bans: hold this one in the tier

    def _refusal(self, tier: Tier, now: float) -> Decision:
        table = self._tables[tier.name]
        if now >= table.retry_at:  # when the oldest state may go, looked up once a second at most
            oldest = table.states.oldest()
            until = max(oldest.tat, oldest.window_end, oldest.ban_until) if oldest is not None else now
            table.retry_at = max(now + 1.0, until)
        wait = table.retry_at - now
        return Decision(False, tier.limit, 0, wait, wait)
