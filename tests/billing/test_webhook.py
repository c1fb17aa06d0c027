"""POST /webhooks/stripe: signatures checked on the raw body, each event applied once, failures retried."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import stripe
from sqlalchemy import func, select

from bastion.billing.models import BillingEvent, BillingPlanChange
from tests.billing.conftest import Customer, billing_of
from tests.billing.fake_stripe import WEBHOOK_SECRET, signed


async def _counts(customer: Customer) -> tuple[int, int]:
    async with billing_of(customer.app).db.session() as session:
        events = await session.scalar(select(func.count()).select_from(BillingEvent))
        changes = await session.scalar(select(func.count()).select_from(BillingPlanChange))
    return events or 0, changes or 0


async def _post(customer: Customer, body: bytes, headers: dict[str, str]) -> Any:
    return await customer.http.post(
        "/webhooks/stripe", content=body, headers={"Content-Type": "application/json", **headers}
    )


@pytest.mark.parametrize(
    "case",
    ["missing", "wrong-secret", "stale", "tampered", "not-v1", "garbage-header"],
)
async def test_a_bad_signature_is_400_and_changes_nothing(customer: Customer, case: str) -> None:
    """Missing, wrong, stale (older than 300 s), tampered or malformed signatures: 400, nothing recorded."""
    _, events = await customer.subscribe()
    event = events[0]
    body, header = signed(event)
    if case == "missing":
        headers: dict[str, str] = {}
    elif case == "wrong-secret":
        headers = {"Stripe-Signature": signed(event, secret="whsec_someone_else")[1]}
    elif case == "stale":
        headers = {"Stripe-Signature": signed(event, timestamp=int(time.time()) - 301)[1]}
    elif case == "tampered":
        body = body.replace(b'"active"', b'"past_due"')
        headers = {"Stripe-Signature": header}
    elif case == "not-v1":
        headers = {"Stripe-Signature": header.replace("v1=", "v0=")}
    else:
        headers = {"Stripe-Signature": "t=abc,v1=zz"}
    response = await _post(customer, body, headers)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "STRIPE_SIGNATURE_INVALID"
    assert await _counts(customer) == (0, 0)
    assert (await customer.status())["plan"] == "free"


async def test_a_signature_within_the_tolerance_is_accepted(customer: Customer) -> None:
    """A delivery signed 299 s ago (a slow retry) is still Stripe's and is applied."""
    _, events = await customer.subscribe()
    response = await customer.deliver(events[0], timestamp=int(time.time()) - 299)
    assert response.status_code == 200, response.text
    assert (await customer.status())["plan"] == "pro"


async def test_the_signature_covers_the_raw_bytes(customer: Customer) -> None:
    """The same JSON re-encoded (other spacing) no longer matches: the body is verified as received."""
    _, events = await customer.subscribe()
    body, header = signed(events[0])
    respaced = json.dumps(json.loads(body), indent=1).encode()
    response = await _post(customer, respaced, {"Stripe-Signature": header})
    assert response.status_code == 400
    assert (await _post(customer, body, {"Stripe-Signature": header})).status_code == 200


async def test_the_same_event_three_times_has_one_effect(customer: Customer) -> None:
    """A redelivered event is acknowledged (200, duplicate) and changes nothing more."""
    _, events = await customer.subscribe()
    created = events[0]
    answers = [await customer.deliver(created) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert [a.json()["duplicate"] for a in answers] == [False, True, True]
    assert await _counts(customer) == (1, 1)
    history = (await customer.http.get("/api/subscription/history", headers=customer.auth)).json()
    assert [(h["from_plan"], h["to_plan"], h["event_id"]) for h in history] == [("free", "pro", created["id"])]


async def test_a_handler_that_fails_once_is_503_then_the_retry_applies(
    customer: Customer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure inside the transaction rolls back the event's record with its effect: 503, so Stripe sends it
    again, and that delivery is applied (the peer that records first would drop it)."""
    from bastion.billing import ledger

    _, events = await customer.subscribe()
    real_settle = ledger.settle
    calls = {"n": 0}

    def settle_failing_once(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("the plan could not be settled mid-event")
        return real_settle(*args, **kwargs)

    monkeypatch.setattr(ledger, "settle", settle_failing_once)
    first = await customer.deliver(events[0])
    assert first.status_code == 503, first.text
    assert first.json()["code"] == "STRIPE_EVENT_NOT_APPLIED"
    assert await _counts(customer) == (0, 0)
    assert (await customer.status())["plan"] == "free"
    retry = await customer.deliver(events[0])
    assert retry.status_code == 200
    assert retry.json()["duplicate"] is False
    assert await _counts(customer) == (1, 1)
    assert (await customer.status())["plan"] == "pro"


async def test_events_of_a_customer_we_do_not_know_are_acknowledged_without_effect(customer: Customer) -> None:
    """Another system's customer on the same Stripe account: 200 (so Stripe stops), recorded as ignored."""
    _, events = await customer.subscribe()
    stranger = json.loads(json.dumps(events[0]))
    stranger["id"] = "evt_stranger"
    stranger["data"]["object"]["customer"] = "cus_not_ours"
    stranger["data"]["object"]["metadata"] = {}
    assert (await customer.deliver(stranger)).status_code == 200
    async with billing_of(customer.app).db.session() as session:
        outcome = await session.scalar(select(BillingEvent.outcome).where(BillingEvent.id == "evt_stranger"))
    assert outcome == "ignored"
    assert (await customer.status())["plan"] == "free"


async def test_an_event_type_billing_does_not_handle_is_acknowledged(customer: Customer) -> None:
    """Stripe sends every type the endpoint subscribes to; unknown ones get 200 and change nothing."""
    event = {"id": "evt_other", "object": "event", "type": "charge.refunded", "created": 1, "data": {"object": {}}}
    response = await customer.deliver(event)
    assert response.status_code == 200
    assert await _counts(customer) == (1, 0)


async def test_a_body_that_is_not_utf8_is_400(customer: Customer) -> None:
    """Bytes that are not UTF-8 cannot carry a valid signature: 400, not a 500."""
    response = await _post(customer, b"\xff\xfe{}", {"Stripe-Signature": f"t={int(time.time())},v1=00"})
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "STRIPE_SIGNATURE_INVALID"
    assert await _counts(customer) == (0, 0)


async def test_a_signed_body_that_is_not_an_event_is_400(customer: Customer) -> None:
    """Signed but not JSON (or not an event): not Stripe's; refused, nothing recorded."""
    for body in (b"not json", b'{"object": "event"}'):
        header = stripe.WebhookSignature.generate_signature_header(body.decode(), WEBHOOK_SECRET)
        response = await _post(customer, body, {"Stripe-Signature": header})
        assert response.status_code == 400, body
    assert await _counts(customer) == (0, 0)
