"""LastUsed holds at most ``max_pending`` keys and users between flushes."""

from __future__ import annotations

from bastion.core.principal import Principal
from bastion.identity.last_used import LastUsed


def test_last_used_holds_at_most_max_pending_and_keeps_updating_those_held():
    """A flood of distinct credentials stops at the cap; a key already held still gets its newest time."""
    last_used = LastUsed(db=None, max_pending=3)  # flush is not called: no database needed
    for n in range(100):
        last_used.touch(Principal("api_key", f"k{n}", user_id="u"), float(n))
        last_used.touch(Principal("user", f"u{n}"), float(n))
    last_used.touch(Principal("api_key", "k1", user_id="u"), 500.0)
    assert last_used._keys == {"k0": 0.0, "k1": 500.0, "k2": 2.0}
    assert len(last_used._users) == 3
