"""What identity counts and logs, shared by its parts (a metric is registered once per process)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from bastion.core import metrics
from bastion.core.logging import get_logger

log = get_logger("bastion.identity")
events = metrics.counter(
    "identity_events_total", "Sign-ins, refreshes and key changes, by outcome", ["event", "outcome"]
)

Invalidate = Callable[[Sequence[str]], Awaitable[None]]
"""Drops cached credentials carrying these tags here and on every other instance (the bus's ``publish``)."""
