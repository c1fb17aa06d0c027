"""Request and response bodies of the billing API (msgspec)."""

from __future__ import annotations

from typing import Literal

import msgspec

State = Literal["free", "pending", "trialing", "active", "past_due", "canceling", "canceled"]


class CheckoutRequest(msgspec.Struct, forbid_unknown_fields=True):
    offer: str | None = msgspec.field(default=None)
    """An offer name from ``BASTION_BILLING__OFFERS``; the default offer when absent."""


class CheckoutOut(msgspec.Struct):
    session_id: str
    url: str


class PortalOut(msgspec.Struct):
    url: str


class CancelRequest(msgspec.Struct, forbid_unknown_fields=True):
    resume: bool = False
    """False: cancel at the end of the paid period; True: undo that (before the period ends)."""


class ChangeRequest(msgspec.Struct, forbid_unknown_fields=True):
    offer: str


class SubscriptionOut(msgspec.Struct):
    id: str
    status: str
    offer: str | None
    cancel_at_period_end: bool
    current_period_end: int | None
    trial_end: int | None
    grace_until: int | None
    """Epoch seconds when a failed payment's grace ends (pro is withdrawn then), while payment is failing."""


class StatusOut(msgspec.Struct):
    plan: str
    """The plan the account has now, as billing derives it from its subscription."""
    state: State
    """``pending`` after checkout until Stripe's event lands (the success page polls this)."""
    subscription: SubscriptionOut | None


class PlanChangeOut(msgspec.Struct):
    at: int
    """Epoch milliseconds."""
    from_plan: str
    to_plan: str
    reason: str
    event_id: str | None


class WebhookAck(msgspec.Struct):
    received: bool
    duplicate: bool
