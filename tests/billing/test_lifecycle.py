"""The whole life of a subscription through the API, the fake Stripe and signed webhooks, plan by plan."""

from __future__ import annotations

from typing import Any

from bastion.core.jobs.runner import JobRunner
from bastion.core.jobs.spec import Periodic
from tests.billing.conftest import Customer, billing_of
from tests.support import FakeClock

DAY = 86_400


async def _history(customer: Customer) -> list[tuple[str, str, str]]:
    response = await customer.http.get("/api/subscription/history", headers=customer.auth)
    assert response.status_code == 200
    return [(h["from_plan"], h["to_plan"], h["reason"]) for h in reversed(response.json())]


async def _post(customer: Customer, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    response = await customer.http.post(path, json=body or {}, headers=customer.auth)
    assert response.status_code == 200, response.text
    out: dict[str, Any] = response.json()
    return out


async def test_upgrade_payment_failure_grace_recovery_cancel_and_back_to_free(
    customer: Customer, clock: FakeClock
) -> None:
    """upgrade → pro → payment failed (pro kept in grace) → grace over (free) → paid again (pro) → cancel at
    period end (pro until then; resume and cancel again) → period ends → free. Identity follows each step."""
    fake, billing = customer.fake, billing_of(customer.app)

    sub_id, events = await customer.subscribe()
    assert (await customer.status())["state"] == "pending"
    await customer.deliver_all(events)
    assert ((await customer.status())["plan"], await customer.identity_plan()) == ("pro", "pro")

    clock.advance(DAY)
    await customer.deliver_all(fake.fail_payment(sub_id))
    status = await customer.status()
    assert (status["plan"], status["state"]) == ("pro", "past_due")
    assert status["subscription"]["grace_until"] == int(clock()) + 3 * DAY

    clock.advance(3 * DAY - 1)
    assert await billing.expire_grace() == 0  # one second before the end of the grace period
    clock.advance(1)
    assert await billing.expire_grace() == 1
    assert ((await customer.status())["plan"], await customer.identity_plan()) == ("free", "free")

    clock.advance(DAY)
    await customer.deliver_all(fake.pay(sub_id))
    status = await customer.status()
    assert (status["plan"], status["state"], status["subscription"]["grace_until"]) == ("pro", "active", None)
    assert await customer.identity_plan() == "pro"

    answer = await _post(customer, "/api/subscription/cancel")
    assert answer["cancel_at_period_end"] is True
    await customer.deliver_all(fake.take_pending())
    assert ((await customer.status())["state"], (await customer.status())["plan"]) == ("canceling", "pro")
    await _post(customer, "/api/subscription/cancel", {"resume": True})
    await customer.deliver_all(fake.take_pending())
    assert (await customer.status())["state"] == "active"
    await _post(customer, "/api/subscription/cancel")
    await customer.deliver_all(fake.take_pending())

    clock.advance(30 * DAY)
    await customer.deliver_all(fake.end_period(sub_id))
    status = await customer.status()
    assert (status["plan"], status["state"]) == ("free", "canceled")
    assert await customer.identity_plan() == "free"
    assert await _history(customer) == [
        ("free", "pro", "customer.subscription.created"),
        ("pro", "free", "grace_expired"),
        ("free", "pro", "invoice.paid"),
        ("pro", "free", "customer.subscription.deleted"),
    ]


async def test_a_trial_grants_pro_and_is_offered_once(customer: Customer) -> None:
    """With trial days set, the first subscription starts trialing (pro); a later checkout has no trial."""
    billing = billing_of(customer.app)
    billing.settings = billing.settings.model_copy(update={"trial_days": 14})
    sub_id, events = await customer.subscribe()
    assert customer.fake.subscriptions[sub_id]["status"] == "trialing"
    await customer.deliver_all(events)
    status = await customer.status()
    assert (status["plan"], status["state"]) == ("pro", "trialing")
    assert status["subscription"]["trial_end"] == customer.fake.subscriptions[sub_id]["trial_end"]
    customer.fake.subscriptions[sub_id]["cancel_at_period_end"] = True
    await customer.deliver_all(customer.fake.end_period(sub_id))
    again = await customer.checkout()
    assert "trial_period_days" not in customer.fake.sessions[again["session_id"]]["_subscription_data"]


async def test_a_change_of_offer_is_prorated_by_stripe(customer: Customer) -> None:
    """Monthly to yearly: the subscription's item gets the new price with the configured proration, and the
    status shows the new offer once Stripe's event lands."""
    sub_id, events = await customer.subscribe()
    await customer.deliver_all(events)
    answer = await _post(customer, "/api/subscription/change", {"offer": "pro_yearly"})
    assert answer["offer"] == "pro_yearly"
    _, _, form = customer.fake.requests[-1]
    assert form["proration_behavior"] == "create_prorations"
    assert [p["to"] for p in customer.fake.prorations] == ["price_pro_yearly"]
    assert customer.fake.prorations[0]["amount"] > 0
    await customer.deliver_all(customer.fake.take_pending())
    status = await customer.status()
    assert (status["plan"], status["subscription"]["offer"]) == ("pro", "pro_yearly")
    assert customer.fake.subscriptions[sub_id]["items"]["data"][0]["price"]["id"] == "price_pro_yearly"


async def test_cancel_without_a_subscription_is_404(customer: Customer) -> None:
    """Nothing to cancel: 404 NO_SUBSCRIPTION, Stripe not called."""
    response = await customer.http.post("/api/subscription/cancel", json={}, headers=customer.auth)
    assert response.status_code == 404
    assert response.json()["code"] == "NO_SUBSCRIPTION"
    assert customer.fake.requests == []


async def test_a_plan_push_that_fails_is_repeated_by_the_sync_job(customer: Customer) -> None:
    """Identity unreachable right after the commit: billing's plan is recorded, the job pushes it later."""
    billing = billing_of(customer.app)
    real = billing.set_plan

    async def down(user_id: str, plan: str) -> None:
        raise ConnectionError("identity's database went away")

    billing.set_plan = down
    _, events = await customer.subscribe()
    await customer.deliver_all(events)
    assert ((await customer.status())["plan"], await customer.identity_plan()) == ("pro", "free")
    billing.set_plan = real
    assert await billing.sync_plans() == 1
    assert await customer.identity_plan() == "pro"
    assert await billing.sync_plans() == 0


async def test_stripe_errors_are_problems_not_500s(customer: Customer) -> None:
    """Stripe down (500 on every attempt): 503 STRIPE_UNAVAILABLE; a 500 once: retried with the same
    idempotency key, one customer."""
    customer.fake.behaviour["/v1/customers"] = "500"
    down = await customer.http.post("/api/subscription/checkout", json={}, headers=customer.auth)
    assert down.status_code == 503
    assert down.json()["code"] == "STRIPE_UNAVAILABLE"
    customer.fake.behaviour = {"/v1/customers": "500-once"}
    await customer.checkout()
    assert len(customer.fake.customers) == 1


async def test_billing_declares_its_two_jobs(customer: Customer, clock: FakeClock) -> None:
    """The grace expiry and the plan sync are declared jobs, each run by one instance of the cluster; the
    grace job's run is the one that withdraws pro after a failed payment."""
    runner: JobRunner = customer.app.litestar.state.jobs
    grace, sync = runner.jobs["billing.grace"], runner.jobs["billing.sync-plans"]
    assert isinstance(grace, Periodic) and grace.every == 60.0 and grace.once_per_cluster
    assert isinstance(sync, Periodic) and sync.every == 30.0 and sync.once_per_cluster
    sub_id, events = await customer.subscribe()
    await customer.deliver_all(events)
    await customer.deliver_all(customer.fake.fail_payment(sub_id))
    clock.advance(3 * DAY)
    assert await grace.run() == 1
    assert await customer.identity_plan() == "free"


async def test_stripe_that_never_answers_is_503_within_the_timeout(
    make_app: Any, billing_settings: Any, fake: Any
) -> None:
    """A Stripe that accepts the connection and never answers: 503 once the timeout has passed, not a request
    held forever."""
    import time

    from tests.billing.conftest import sign_up
    from tests.conftest import serve

    fake.behaviour["/v1/customers"] = "hang"
    app = make_app(billing_settings(timeout_seconds=0.5, retries=0))
    async with serve(app) as http:
        customer = await sign_up(http, app, fake)
        started = time.monotonic()
        response = await http.post("/api/subscription/checkout", json={}, headers=customer.auth)
        assert response.status_code == 503, response.text
        assert time.monotonic() - started < 3.0


async def test_a_checkout_event_whose_refetch_fails_is_retried_by_stripe(customer: Customer) -> None:
    """checkout.session.completed re-fetches the subscription; Stripe failing then: 503 and nothing recorded,
    and the redelivery applies it."""
    _, events = await customer.subscribe()
    completed = events[2]
    assert completed["type"] == "checkout.session.completed"
    customer.fake.behaviour["/v1/subscriptions"] = "500"
    failed = await customer.deliver(completed)
    assert failed.status_code == 503
    assert (await customer.status())["state"] == "pending"
    customer.fake.behaviour.clear()
    retried = await customer.deliver(completed)
    assert retried.status_code == 200
    assert retried.json()["duplicate"] is False
    assert ((await customer.status())["plan"], (await customer.status())["state"]) == ("pro", "active")
