"""HTTP routes of billing: thin handlers over :class:`BillingService` and its :class:`EventProcessor`.

POST /api/subscription/checkout   {"offer"?} → a Stripe Checkout URL            tier billing
POST /api/subscription/portal     → a Stripe customer portal URL                 tier billing
GET  /api/subscription/status     → plan and state ("pending" until the webhook)  tier billing
POST /api/subscription/cancel     {"resume"?} cancel at period end, or undo it    tier billing
POST /api/subscription/change     {"offer"} another price, prorated by Stripe     tier billing
GET  /api/subscription/history    every change of the account's plan             tier billing
POST /webhooks/stripe             Stripe's events, verified on the raw body       tier billing_webhook
"""

from __future__ import annotations

from litestar import get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from bastion.billing.schemas import (
    CancelRequest,
    ChangeRequest,
    CheckoutOut,
    CheckoutRequest,
    PlanChangeOut,
    PortalOut,
    StatusOut,
    SubscriptionOut,
    WebhookAck,
)
from bastion.billing.service import BillingService
from bastion.core.dependencies import AppRequest
from bastion.core.principal import require_user


@post("/api/subscription/checkout", status_code=200)
async def checkout(
    request: AppRequest, billing: NamedDependency[BillingService], data: JSONBody[CheckoutRequest | None] = None
) -> CheckoutOut:
    user_id = require_user(request.principal)
    email = await billing.email_of(request.principal)
    offer = data.offer if data is not None else None
    return await billing.checkout(user_id, email, offer, base_url=str(request.base_url))


@post("/api/subscription/portal", status_code=200)
async def portal(request: AppRequest, billing: NamedDependency[BillingService]) -> PortalOut:
    return await billing.portal(require_user(request.principal), base_url=str(request.base_url))


@get("/api/subscription/status")
async def status(request: AppRequest, billing: NamedDependency[BillingService]) -> StatusOut:
    return await billing.status(require_user(request.principal))


@post("/api/subscription/cancel", status_code=200)
async def cancel(
    request: AppRequest, billing: NamedDependency[BillingService], data: JSONBody[CancelRequest | None] = None
) -> SubscriptionOut:
    resume = data.resume if data is not None else False
    return await billing.cancel(require_user(request.principal), resume=resume)


@post("/api/subscription/change", status_code=200)
async def change(
    request: AppRequest, billing: NamedDependency[BillingService], data: JSONBody[ChangeRequest]
) -> SubscriptionOut:
    return await billing.change(require_user(request.principal), data.offer)


@get("/api/subscription/history")
async def history(request: AppRequest, billing: NamedDependency[BillingService]) -> list[PlanChangeOut]:
    return await billing.history(require_user(request.principal))


@post("/webhooks/stripe", status_code=200)
async def stripe_webhook(request: AppRequest, billing: NamedDependency[BillingService]) -> WebhookAck:
    # The raw bytes: the signature covers them exactly, so nothing may parse (or re-encode) the body first.
    receipt = await billing.events.receive(await request.body(), request.headers.get("stripe-signature"))
    return WebhookAck(received=True, duplicate=receipt.duplicate)


route_handlers = [checkout, portal, status, cancel, change, history, stripe_webhook]
