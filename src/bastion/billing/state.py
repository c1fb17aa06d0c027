"""What a Stripe subscription means for an account, as pure functions (no I/O, easy to test exhaustively).

Ordering: Stripe does not deliver events in order. Each subscription row keeps the version of the newest
description applied, ``(event created, status rank)``; an older one is ignored, and a canceled subscription
stays canceled (Stripe never revives one). Payment state (past due since when) has its own version, moved by
the newest event that spoke about payment: a subscription snapshot, ``invoice.paid`` or
``invoice.payment_failed``. Ties (same second, same status) go to the later arrival.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bastion.billing.settings import BillingSettings

STATUS_RANK = {
    "incomplete": 0,
    "trialing": 1,
    "active": 2,
    "past_due": 3,
    "paused": 4,
    "unpaid": 4,
    "incomplete_expired": 5,
    "canceled": 6,
}
GRANTING = frozenset({"trialing", "active", "past_due"})
"""Statuses under which the subscription's plan holds (past_due only within the grace period)."""
FINAL = frozenset({"canceled", "incomplete_expired"})
PLAN_RANK = {"free": 0, "pro": 1}


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The fields of a Stripe ``subscription`` object that billing keeps."""

    id: str
    customer: str
    status: str
    price: str | None
    item: str | None
    current_period_end_s: int | None
    cancel_at_period_end: bool
    trial_end_s: int | None
    user_hint: str | None
    """``metadata.bastion_user_id`` (set at checkout), for events that arrive before we know the customer."""

    @property
    def rank(self) -> int:
        return STATUS_RANK.get(self.status, 0)


def _id(value: Any) -> str | None:
    """An expandable field: the id string, or the expanded object's id."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        found = value.get("id")
        return found if isinstance(found, str) else None
    return None


def parse_subscription(obj: Mapping[str, Any]) -> Snapshot:
    items = (obj.get("items") or {}).get("data") or [{}]
    first = items[0]
    price = first.get("price") or obj.get("plan") or {}
    # current_period_end moved from the subscription to its items in API version 2025-03-31
    period_end = obj.get("current_period_end") or first.get("current_period_end")
    customer = _id(obj.get("customer"))
    if not isinstance(obj.get("id"), str) or customer is None:
        raise ValueError("a subscription without id or customer")
    return Snapshot(
        id=obj["id"],
        customer=customer,
        status=str(obj.get("status") or "incomplete"),
        price=_id(price),
        item=_id(first),
        current_period_end_s=int(period_end) if period_end is not None else None,
        cancel_at_period_end=bool(obj.get("cancel_at_period_end")),
        trial_end_s=int(obj["trial_end"]) if obj.get("trial_end") is not None else None,
        user_hint=(obj.get("metadata") or {}).get("bastion_user_id"),
    )


def invoice_subscription(obj: Mapping[str, Any]) -> str | None:
    """The subscription an invoice bills: ``parent.subscription_details`` since API version 2025-03-31,
    ``subscription`` before."""
    found = _id(obj.get("subscription"))
    if found is None:
        details = (obj.get("parent") or {}).get("subscription_details") or {}
        found = _id(details.get("subscription"))
    return found


def is_newer(stored_status: str, stored: tuple[int, int], incoming: tuple[int, int]) -> bool:
    """Whether a description versioned ``incoming`` replaces the one held (``(created, rank)`` each)."""
    if stored_status in FINAL:
        return False
    return incoming >= stored


@dataclass(frozen=True, slots=True)
class Standing:
    """The fields of a stored subscription the plan depends on."""

    status: str
    price_id: str | None
    past_due_since_ms: int | None


def grace_ends_ms(standing: Standing, settings: BillingSettings) -> int | None:
    if standing.past_due_since_ms is None or standing.status not in GRANTING:
        return None
    return standing.past_due_since_ms + settings.grace_period_seconds * 1000


def subscription_plan(standing: Standing, settings: BillingSettings, now_ms: int) -> str:
    """The plan one subscription grants now: its price's plan while it is good or within the grace period."""
    if standing.status not in GRANTING:
        return "free"
    ends = grace_ends_ms(standing, settings)
    if ends is not None and now_ms >= ends:
        return "free"
    return settings.price_plan(standing.price_id)


def account_plan(standings: Iterable[Standing], settings: BillingSettings, now_ms: int) -> str:
    """The best plan any of an account's subscriptions grants."""
    return max((subscription_plan(s, settings, now_ms) for s in standings), key=PLAN_RANK.__getitem__, default="free")
