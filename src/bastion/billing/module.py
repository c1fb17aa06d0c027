"""The billing module's descriptor: Stripe subscriptions that set identity's plans, their webhook and jobs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from bastion.billing.settings import BillingSettings
from bastion.core.module import Module, ModuleContext, ModuleParts, Quota

if TYPE_CHECKING:
    from bastion.core.principal import Principal
    from bastion.settings import Settings

WEBHOOK_MAX_BYTES = 512 * 1024
"""Stripe's events are a few KiB; an invoice with many lines can reach a few hundred."""


def build(ctx: ModuleContext[Settings]) -> ModuleParts:
    from litestar.di import Provide

    from bastion.billing.router import route_handlers
    from bastion.billing.service import BillingService
    from bastion.billing.stripe_api import StripeApi
    from bastion.core.edge.asgi import RoutePolicy
    from bastion.core.edge.routes import RouteGroup
    from bastion.core.jobs.spec import Periodic
    from bastion.identity.service import Identity

    config = ctx.settings.billing
    identity = ctx.require(Identity)

    async def email_of(principal: Principal) -> str | None:
        profile = await identity.profile(principal)
        return profile.email if profile is not None else None

    service = BillingService(
        ctx.platform.db, StripeApi(config), settings=config, set_plan=identity.set_plan, email_of=email_of
    )
    return ModuleParts(
        route_handlers=route_handlers,
        route_groups=[
            RouteGroup("/api/subscription", RoutePolicy(tier="billing", max_body_bytes=4096)),
            RouteGroup(
                "/webhooks/stripe",
                RoutePolicy(
                    tier="billing_webhook", max_body_bytes=WEBHOOK_MAX_BYTES, media_types=("application/json",)
                ),
                methods={"POST"},
                exact=True,
            ),
        ],
        dependencies={"billing": Provide(lambda: service, use_cache=True, sync_to_thread=False)},
        jobs=[
            Periodic(
                name="billing.grace", every=config.grace_check_seconds, run=service.expire_grace, once_per_cluster=True
            ),
            Periodic(
                name="billing.sync-plans",
                every=config.sync_check_seconds,
                run=service.sync_plans,
                once_per_cluster=True,
                record_success=False,
            ),
        ],
        on_close=[("billing", service.close)],
    )


MODULE: Module[Settings] = Module(
    name="billing",
    settings=BillingSettings,
    models="bastion.billing.models",
    migrations=Path(__file__).parent / "migrations",
    tiers=[Quota("billing", "30/minute"), Quota("billing_webhook", "1200/minute")],
    problems=lambda settings: settings.billing.problems(settings.is_production),
    build=build,
)
