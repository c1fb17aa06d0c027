"""Two app instances on one PostgreSQL, Stripe delivering the same event to both at once: one effect."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import func, select

from bastion.app import Bastion
from bastion.billing.models import BillingEvent, BillingPlanChange
from bastion.settings import Settings
from tests.billing.conftest import billing_of, sign_up, use_clock
from tests.billing.fake_stripe import FakeStripe
from tests.conftest import serve
from tests.support import FakeClock

pytestmark = pytest.mark.postgres


async def _never_seen(_event_id: str) -> bool:
    return False


@pytest.mark.parametrize("database", ["postgres"], indirect=True)
async def test_the_same_event_at_two_instances_at_once_has_one_effect(
    make_app: Callable[..., Bastion],
    billing_settings: Callable[..., Settings],
    fake: FakeStripe,
    clock: FakeClock,
    database: dict[str, Any],
) -> None:
    """Every event of a lifecycle, each sent to both instances concurrently: exactly one applies it (the other
    waits on the event id's unique index, then finds it), and each plan change is recorded once."""
    settings = billing_settings()
    one, two = make_app(settings), make_app(settings)
    for app in (one, two):
        use_clock(app, clock)
        # skip the cheap look-up before the transaction: the claim inside it must decide on its own
        billing_of(app).events._seen = _never_seen  # type: ignore[method-assign,assignment]
    async with serve(one) as http_one, serve(two) as http_two:
        customer = await sign_up(http_one, one, fake)
        other = await sign_up(http_two, two, fake, email="bob@example.com")
        sub_id, events = await customer.subscribe()
        clock.advance(60)
        events += fake.fail_payment(sub_id)
        clock.advance(60)
        events += fake.pay(sub_id)
        fresh = []
        for event in events:
            answers = await asyncio.gather(customer.deliver(event), other.deliver(event))
            assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
            fresh.append(sorted(a.json()["duplicate"] for a in answers))
        assert fresh == [[False, True]] * len(events)
        async with billing_of(one).db.session() as session:
            applied = await session.scalar(select(func.count()).select_from(BillingEvent))
            changes = await session.scalar(select(func.count()).select_from(BillingPlanChange))
        assert (applied, changes) == (len(events), 1)
        assert (await customer.status())["plan"] == "pro"
        assert (await other.identity_plan()) == "free"
