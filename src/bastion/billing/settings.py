"""Settings of the billing module (``BASTION_BILLING__<FIELD>``).

BASTION_BILLING__SECRET_KEY=sk_live_…                     # Stripe's secret API key
BASTION_BILLING__WEBHOOK_SECRET=whsec_…                   # the endpoint's signing secret
BASTION_BILLING__OFFERS__PRO__PRICE=price_…               # what checkout sells as "pro"
BASTION_BILLING__OFFERS__PRO_YEARLY__PRICE=price_…        # a second price of the same plan
BASTION_BILLING__PUBLIC_URL=https://app.example.com       # where Stripe sends the customer back
BASTION_BILLING__GRACE_PERIOD_SECONDS=259200              # pro kept 3 days after a failed payment
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from bastion.core.settings import Problem

DAY = 86_400
PLANS = ("free", "pro")
"""The plans identity knows; an offer sells one of them (``free`` is what an account has without one)."""


class Offer(BaseModel):
    """One thing checkout sells: a Stripe price, and the plan it grants while its subscription is good."""

    model_config = ConfigDict(frozen=True)

    price: str = Field(min_length=1, max_length=255)
    plan: Literal["pro"] = "pro"


class BillingSettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    secret_key: SecretStr = SecretStr("")
    """Stripe's secret API key (``sk_…``); empty: the checkout, portal and cancel routes answer 503."""
    webhook_secret: SecretStr = SecretStr("")
    """The webhook endpoint's signing secret (``whsec_…``); empty: every webhook is refused (400)."""
    api_base: str | None = None
    """Stripe's API origin; None is Stripe's own. Tests point it at a local fake."""
    timeout_seconds: float = Field(20.0, gt=0)
    """Each call to Stripe, its retries included (the upstream's settings are built from these three:
    ``core.upstream`` loads the metrics library, which the CLI must not import with the settings)."""
    retries: int = Field(2, ge=0, le=5)
    max_concurrent: int = Field(16, ge=1)

    offers: dict[str, Offer] = Field(default_factory=dict)
    """Offer name (what a client asks for) → its Stripe price and plan."""
    default_offer: str = "pro"
    trial_days: int = Field(0, ge=0, le=730)
    """Trial on an account's first subscription (none when it had one before)."""
    proration_behavior: Literal["create_prorations", "always_invoice", "none"] = "create_prorations"
    """How Stripe bills a change of price mid-period (Stripe computes the amounts)."""
    grace_period_seconds: int = Field(3 * DAY, ge=0)
    """How long an account keeps its paid plan after a payment fails (Stripe retries the card meanwhile)."""
    webhook_tolerance_seconds: int = Field(300, ge=1, le=3600)
    """Oldest signature timestamp accepted (Stripe's own default is 300 s)."""

    public_url: str | None = None
    """The site's origin, for the checkout's success and cancel pages and the portal's return page."""
    success_path: str = "/billing/success?session_id={CHECKOUT_SESSION_ID}"
    cancel_path: str = "/billing"
    portal_return_path: str = "/billing"
    checkout_pending_seconds: int = Field(DAY, ge=60)
    """How long an unfinished checkout shows as "pending" (Stripe's sessions expire after 24 h)."""

    grace_check_seconds: float = Field(60.0, gt=0)
    sync_check_seconds: float = Field(30.0, gt=0)

    def price_plan(self, price: str | None) -> str:
        """The plan a Stripe price grants: the offer's, or free for a price no offer sells."""
        for offer in self.offers.values():
            if offer.price == price:
                return offer.plan
        return "free"

    def offer_of_price(self, price: str | None) -> str | None:
        for name, offer in self.offers.items():
            if offer.price == price:
                return name
        return None

    def problems(self, production: bool) -> list[Problem]:
        found: list[Problem] = []
        if not self.offers:
            return found  # billing not set up: its routes say so (503); nothing is unsafe
        severity: Literal["error", "warning"] = "error" if production else "warning"
        if not self.secret_key.get_secret_value():
            found.append(Problem(severity, "BASTION_BILLING__SECRET_KEY", "offers are configured but no Stripe key"))
        if not self.webhook_secret.get_secret_value():
            found.append(
                Problem(severity, "BASTION_BILLING__WEBHOOK_SECRET", "without it every Stripe event is refused")
            )
        if self.default_offer not in self.offers:
            found.append(Problem("error", "BASTION_BILLING__DEFAULT_OFFER", f"no offer {self.default_offer!r}"))
        if production and self.public_url is None:
            found.append(Problem("error", "BASTION_BILLING__PUBLIC_URL", "Stripe needs the pages to send users to"))
        return found
