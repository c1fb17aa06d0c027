"""Errors of the billing module, each with a stable code.

AppError
├── BadRequest
│   └── InvalidSignature        400 STRIPE_SIGNATURE_INVALID   (bad, missing or stale Stripe-Signature)
├── NotFound
│   ├── NoSubscription          404 NO_SUBSCRIPTION
│   └── NoCustomer              404 NO_BILLING_CUSTOMER        (the portal before any checkout)
├── Conflict
│   └── AlreadySubscribed       409 ALREADY_SUBSCRIBED
├── ValidationFailed
│   └── UnknownOffer            422 UNKNOWN_OFFER
├── BadGateway
│   └── StripeRefused           502 STRIPE_REFUSED             (Stripe answered 4xx to a call of ours)
└── ServiceUnavailable
    ├── BillingOff              503 BILLING_NOT_CONFIGURED
    ├── StripeUnavailable       503 STRIPE_UNAVAILABLE         (no answer, or 5xx, after the retries)
    └── EventNotApplied         503 STRIPE_EVENT_NOT_APPLIED   (rolled back; Stripe delivers it again)
"""

from __future__ import annotations

from bastion.core.errors import (
    BadGateway,
    BadRequest,
    Conflict,
    NotFound,
    ServiceUnavailable,
    ValidationFailed,
)


class InvalidSignature(BadRequest):
    code, title = "STRIPE_SIGNATURE_INVALID", "Stripe signature invalid"


class NoSubscription(NotFound):
    code, title = "NO_SUBSCRIPTION", "No subscription"


class NoCustomer(NotFound):
    code, title = "NO_BILLING_CUSTOMER", "No billing account yet"


class AlreadySubscribed(Conflict):
    code, title = "ALREADY_SUBSCRIBED", "Already subscribed"


class UnknownOffer(ValidationFailed):
    code, title = "UNKNOWN_OFFER", "Unknown offer"


class StripeRefused(BadGateway):
    code, title = "STRIPE_REFUSED", "Stripe refused the request"


class BillingOff(ServiceUnavailable):
    code, title = "BILLING_NOT_CONFIGURED", "Billing is not configured"


class StripeUnavailable(ServiceUnavailable):
    code, title = "STRIPE_UNAVAILABLE", "Stripe is unavailable"


class EventNotApplied(ServiceUnavailable):
    code, title = "STRIPE_EVENT_NOT_APPLIED", "The event could not be applied; it is safe to send again"
