"""Errors of the billing module, each with a stable code.

AppError
├── BadRequest
│   └── InvalidSignature        400 STRIPE_SIGNATURE_INVALID   (bad, missing or stale Stripe-Signature)
├── NotFound
│   ├── BillingOff              404 BILLING_NOT_CONFIGURED     (no offers or no Stripe key on this server)
│   ├── NoSubscription          404 NO_SUBSCRIPTION
│   └── NoCustomer              404 NO_BILLING_CUSTOMER        (the portal before any checkout)
├── Conflict
│   └── AlreadySubscribed       409 ALREADY_SUBSCRIBED
├── ValidationFailed
│   └── UnknownOffer            422 UNKNOWN_OFFER
├── BadGateway
│   └── StripeRefused           502 STRIPE_REFUSED             (Stripe answered 4xx to a call of ours)
└── ServiceUnavailable
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


class BillingOff(NotFound):
    """Billing is absent from this server (as a route that does not exist), not down: a 5xx would page
    an operator and ask clients to retry something that will never work."""

    code, title = "BILLING_NOT_CONFIGURED", "Billing is not configured"


class StripeUnavailable(ServiceUnavailable):
    code, title = "STRIPE_UNAVAILABLE", "Stripe is unavailable"


class EventNotApplied(ServiceUnavailable):
    code, title = "STRIPE_EVENT_NOT_APPLIED", "The event could not be applied; it is safe to send again"
