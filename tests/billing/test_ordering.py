"""Stripe's events in every order, with duplicates: the account always ends on the plan the last state gives.

Each scenario runs a subscription's life on the fake Stripe (events at distinct seconds, as Stripe stamps
them), then delivers its events in every permutation (``itertools.permutations``) to a fresh account, with
one event repeated three times and another delivered again at the end.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest

from tests.billing.conftest import Customer, billing_of
from tests.billing.fake_stripe import FakeStripe
from tests.support import FakeClock

Scenario = Callable[[FakeStripe, FakeClock, str], list[dict[str, Any]]]


def _step(clock: FakeClock) -> None:
    clock.advance(60)


def canceled_at_period_end(fake: FakeStripe, clock: FakeClock, user: str) -> list[dict[str, Any]]:
    """created, paid, checkout completed; set to cancel; deleted → free."""
    sub_events = fake.complete_checkout(fake.start_checkout(user))
    sub_id = sub_events[0]["data"]["object"]["id"]
    _step(clock)
    fake.subscriptions[sub_id]["cancel_at_period_end"] = True
    updated = fake._event("customer.subscription.updated", fake.subscriptions[sub_id], {"cancel_at_period_end": False})
    _step(clock)
    return [*sub_events, updated, *fake.end_period(sub_id)]


def payment_recovers(fake: FakeStripe, clock: FakeClock, user: str) -> list[dict[str, Any]]:
    """created; payment failed (past_due); paid again (active) → pro, not past due."""
    created = fake.complete_checkout(fake.start_checkout(user))[0]
    sub_id = created["data"]["object"]["id"]
    _step(clock)
    failed = fake.fail_payment(sub_id)
    _step(clock)
    return [created, *failed, *fake.pay(sub_id)]


def trial_converts(fake: FakeStripe, clock: FakeClock, user: str) -> list[dict[str, Any]]:
    """created trialing; trial_will_end; paid and active → pro."""
    events = fake.complete_checkout(fake.start_checkout(user, trial_days=14))
    sub_id = events[0]["data"]["object"]["id"]
    _step(clock)
    return [events[0], events[2], *fake.trial_ends(sub_id)]


SCENARIOS: list[tuple[Scenario, str, str]] = [
    (canceled_at_period_end, "free", "canceled"),
    (payment_recovers, "pro", "active"),
    (trial_converts, "pro", "active"),
]


@pytest.mark.parametrize(("scenario", "plan", "state"), SCENARIOS, ids=lambda v: getattr(v, "__name__", str(v)))
async def test_every_order_with_duplicates_ends_on_the_right_plan(
    customer: Customer, database: dict[str, Any], clock: FakeClock, scenario: Scenario, plan: str, state: str
) -> None:
    """Created after updated, deleted before updated, the same event three times: the final plan is right."""
    billing = billing_of(customer.app)
    orders_run = 0
    template = scenario(customer.fake, clock, "probe")
    orders = list(itertools.permutations(range(len(template))))
    if database:  # PostgreSQL: every 5th order (each order is a fresh account, and the server is shared)
        orders = orders[::5]
    for number, order in enumerate(orders):
        user = f"user-{scenario.__name__}-{number}"
        events = scenario(customer.fake, clock, user)
        sequence = [events[i] for i in order]
        sequence[1:1] = [sequence[1], sequence[1]]  # the second event three times in a row
        sequence.append(sequence[0])  # and the first once more at the end
        await customer.deliver_all(sequence)
        status = await billing.status(user)
        assert (status.plan, status.state) == (plan, state), (scenario.__name__, order)
        if plan == "pro":
            assert status.subscription is not None
            assert status.subscription.grace_until is None, order
        orders_run += 1
    assert orders_run == len(orders) > 0
