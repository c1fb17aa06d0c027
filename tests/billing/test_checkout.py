"""Checkout, portal, status and cancel through the official SDK against the fake Stripe."""

from __future__ import annotations

from tests.billing.conftest import Customer


async def test_checkout_opens_a_subscription_session_for_the_account(customer: Customer) -> None:
    """Checkout asks Stripe for a subscription session on the account's customer, with its id as reference."""
    out = await customer.checkout()
    session = customer.fake.sessions[out["session_id"]]
    assert out["url"] == session["url"]
    assert session["client_reference_id"] == customer.user_id
    assert session["metadata"] == {"bastion_user_id": customer.user_id, "offer": "pro"}
    assert session["_subscription_data"]["metadata"]["bastion_user_id"] == customer.user_id
    assert session["_price"] == "price_pro_monthly"
    assert session["success_url"].endswith("/billing/success?session_id={CHECKOUT_SESSION_ID}")
    assert customer.fake.customers[session["customer"]]["email"] == "ada@example.com"


async def test_the_account_keeps_one_stripe_customer(customer: Customer) -> None:
    """A second checkout reuses the customer the first created."""
    first = await customer.checkout()
    second = await customer.checkout(offer="pro_yearly")
    sessions = customer.fake.sessions
    assert sessions[first["session_id"]]["customer"] == sessions[second["session_id"]]["customer"]
    assert len(customer.fake.customers) == 1


async def test_status_is_pending_until_the_webhook_lands(customer: Customer) -> None:
    """After checkout the status says "pending" (not free, not pro) until Stripe's event is applied."""
    assert (await customer.status())["state"] == "free"
    _, events = await customer.subscribe()
    pending = await customer.status()
    assert (pending["state"], pending["plan"]) == ("pending", "free")
    await customer.deliver_all(events)
    done = await customer.status()
    assert (done["state"], done["plan"]) == ("active", "pro")
    assert done["subscription"]["offer"] == "pro"
    assert await customer.identity_plan() == "pro"


async def test_an_unknown_offer_is_refused(customer: Customer) -> None:
    """An offer the settings do not sell is a 422 with the offers there are, and nothing is created."""
    response = await customer.http.post("/api/subscription/checkout", json={"offer": "gold"}, headers=customer.auth)
    assert response.status_code == 422
    assert response.json()["code"] == "UNKNOWN_OFFER"
    assert customer.fake.customers == {}


async def test_checkout_needs_a_signed_in_user(customer: Customer) -> None:
    """Anonymous callers get 401 and Stripe is not called."""
    response = await customer.http.post("/api/subscription/checkout", json={})
    assert response.status_code == 401
    assert customer.fake.requests == []


async def test_a_subscriber_cannot_check_out_twice(customer: Customer) -> None:
    """An account with a live subscription is told to change it instead (409)."""
    _, events = await customer.subscribe()
    await customer.deliver_all(events)
    response = await customer.http.post("/api/subscription/checkout", json={}, headers=customer.auth)
    assert response.status_code == 409
    assert response.json()["code"] == "ALREADY_SUBSCRIBED"


async def test_the_portal_opens_on_the_accounts_customer(customer: Customer) -> None:
    """The portal session is for the account's customer and returns to the billing page."""
    none_yet = await customer.http.post("/api/subscription/portal", headers=customer.auth)
    assert none_yet.status_code == 404
    out = await customer.checkout()
    response = await customer.http.post("/api/subscription/portal", headers=customer.auth)
    assert response.status_code == 200, response.text
    method, path, form = customer.fake.requests[-1]
    assert (method, path) == ("POST", "/v1/billing_portal/sessions")
    assert form["customer"] == customer.fake.sessions[out["session_id"]]["customer"]
    assert form["return_url"].endswith("/billing")
    assert response.json()["url"].startswith(customer.fake.url)


async def test_a_delayed_payment_that_fails_ends_pending(customer: Customer) -> None:
    """checkout.session.async_payment_failed: the checkout no longer shows as pending, the plan stays free."""
    out = await customer.checkout()
    session = {k: v for k, v in customer.fake.sessions[out["session_id"]].items() if not k.startswith("_")}
    event = customer.fake._event("checkout.session.async_payment_failed", session)
    assert (await customer.status())["state"] == "pending"
    assert (await customer.deliver(event)).status_code == 200
    assert ((await customer.status())["state"], (await customer.status())["plan"]) == ("free", "free")


async def test_a_delayed_payment_that_succeeds_grants_the_plan(customer: Customer) -> None:
    """checkout.session.async_payment_succeeded alone (its completed event lost) is enough: the subscription is
    re-fetched and applied."""
    _, events = await customer.subscribe()
    completed = events[2]
    succeeded = {**completed, "id": "evt_async_ok", "type": "checkout.session.async_payment_succeeded"}
    assert (await customer.deliver(succeeded)).status_code == 200
    assert ((await customer.status())["state"], (await customer.status())["plan"]) == ("active", "pro")
