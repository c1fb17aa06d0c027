"""The pure rules: what a subscription grants, and which description of it is newer."""

from __future__ import annotations

import pytest

from bastion.billing.settings import BillingSettings
from bastion.billing.state import Standing, account_plan, is_newer, parse_subscription, subscription_plan

SETTINGS = BillingSettings(offers={"pro": {"price": "price_pro"}}, grace_period_seconds=100)


@pytest.mark.parametrize(
    ("status", "plan"),
    [
        ("trialing", "pro"),
        ("active", "pro"),
        ("past_due", "pro"),
        ("incomplete", "free"),
        ("incomplete_expired", "free"),
        ("unpaid", "free"),
        ("paused", "free"),
        ("canceled", "free"),
    ],
)
def test_what_each_status_grants(status: str, plan: str) -> None:
    """Trialing, active and (within the grace period) past due grant the offer's plan; the rest grant free."""
    assert subscription_plan(Standing(status, "price_pro", None), SETTINGS, now_ms=0) == plan


def test_the_grace_period_ends_to_the_millisecond() -> None:
    """A failing payment keeps pro until ``past_due_since + grace``, not a millisecond longer."""
    failing = Standing("past_due", "price_pro", 1_000)
    assert subscription_plan(failing, SETTINGS, now_ms=1_000 + 99_999) == "pro"
    assert subscription_plan(failing, SETTINGS, now_ms=1_000 + 100_000) == "free"


def test_a_price_no_offer_sells_grants_free_even_when_active() -> None:
    """Only configured offers grant a plan: a subscription to another price grants free."""
    assert subscription_plan(Standing("active", "price_unknown", None), SETTINGS, now_ms=0) == "free"


def test_an_account_has_the_best_plan_of_its_subscriptions() -> None:
    """An old canceled subscription beside a live one: the live one's plan; none at all: free."""
    standings = [Standing("canceled", "price_pro", None), Standing("active", "price_pro", None)]
    assert account_plan(standings, SETTINGS, now_ms=0) == "pro"
    assert account_plan([], SETTINGS, now_ms=0) == "free"


@pytest.mark.parametrize(
    ("stored_status", "stored", "incoming", "newer"),
    [
        ("active", (10, 2), (11, 0), True),  # a later second wins whatever its status
        ("active", (10, 2), (9, 6), False),  # an earlier second loses, even a cancellation
        ("active", (10, 2), (10, 3), True),  # same second: the further status wins
        ("past_due", (10, 3), (10, 2), False),
        ("active", (10, 2), (10, 2), True),  # same second, same status: the later arrival
        ("canceled", (10, 6), (20, 2), False),  # canceled is final
    ],
)
def test_which_description_is_newer(
    stored_status: str, stored: tuple[int, int], incoming: tuple[int, int], newer: bool
) -> None:
    """``(created, status rank)`` orders descriptions; a canceled subscription takes none after it."""
    assert is_newer(stored_status, stored, incoming) is newer


def test_a_subscription_is_read_from_either_api_version() -> None:
    """``current_period_end`` on the subscription (before 2025-03-31) or on its item (since); ids or objects."""
    old = {
        "id": "sub_1",
        "customer": {"id": "cus_1"},
        "status": "active",
        "current_period_end": 123,
        "items": {"data": [{"id": "si_1", "price": "price_pro"}]},
    }
    new = {
        "id": "sub_1",
        "customer": "cus_1",
        "status": "active",
        "items": {"data": [{"id": "si_1", "price": {"id": "price_pro"}, "current_period_end": 123}]},
        "metadata": {"bastion_user_id": "u1"},
    }
    for obj in (old, new):
        snap = parse_subscription(obj)
        assert (snap.customer, snap.price, snap.item, snap.current_period_end_s) == ("cus_1", "price_pro", "si_1", 123)
    assert parse_subscription(new).user_hint == "u1"
    with pytest.raises(ValueError, match="customer"):
        parse_subscription({"id": "sub_1", "status": "active"})
