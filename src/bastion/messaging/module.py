"""The messaging module's descriptor: the API, the delivery pipeline (the embedded dispatcher, or RabbitMQ
when ``BASTION_AMQP_URL`` is set), its jobs and its checks; :class:`Messaging` for other modules."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bastion.core.module import Module, ModuleContext, ModuleParts, Quota
from bastion.core.settings import Problem
from bastion.messaging.settings import MessagingSettings

if TYPE_CHECKING:
    from collections.abc import Sequence

    import click

    from bastion.core.lifecycle import Closer
    from bastion.core.platform import Platform
    from bastion.core.stores.base import Store
    from bastion.messaging.delivery import Delivery
    from bastion.settings import Settings


def make_delivery(platform: Platform, config: MessagingSettings, store: Store) -> Delivery:
    """The delivery of one message (API client, shared limits), as the dispatcher and the consumers use it."""
    from bastion.messaging.delivery import Delivery
    from bastion.messaging.limits import Limits
    from bastion.messaging.whatsapp import WhatsAppClient

    limits = Limits(
        store,
        number_id=config.whatsapp.phone_number_id,
        per_second=config.throughput_per_second,
        pair_interval=config.pair_interval_seconds,
        hold=config.whatsapp.timeout_seconds + 5,
    )
    return Delivery(platform.db, WhatsAppClient(platform.http, config.whatsapp), limits, config)


def build(ctx: ModuleContext[Settings]) -> ModuleParts:
    from litestar.di import Provide

    from bastion.core.edge.asgi import RoutePolicy
    from bastion.core.edge.routes import RouteGroup
    from bastion.core.health import HealthCheck
    from bastion.core.jobs.spec import Job, Periodic
    from bastion.messaging.contacts import Directory
    from bastion.messaging.jobs import MessagingJobs
    from bastion.messaging.probes import Probes
    from bastion.messaging.router import route_handlers
    from bastion.messaging.service import Messaging
    from bastion.messaging.webhooks import Webhooks

    platform, config = ctx.platform, ctx.settings.messaging
    service = Messaging(platform.db, config)
    directory = Directory(platform.db, config)
    webhooks = Webhooks(platform.db, config)
    jobs = MessagingJobs(platform.db, config)
    probes = Probes(platform.db, platform.broker, config)
    declared: list[Job] = [
        Periodic(name="messaging.redrive", every=30.0, run=jobs.redrive, once_per_cluster=True, record_success=False),
        Periodic(name="messaging.purge", every=3600.0, run=jobs.purge, once_per_cluster=True),
        Periodic(name="messaging.gauges", every=15.0, run=probes.sample, once_per_cluster=True, record_success=False),
    ]
    on_startup: list[Callable[[], Any]] = []
    on_close: list[tuple[str, Closer]] = []
    if platform.broker is None:
        from bastion.messaging.dispatcher import Dispatcher

        dispatcher = Dispatcher(platform.db, make_delivery(platform, config, ctx.store), config)
        service.on_accept = dispatcher.wake
        on_startup.append(dispatcher.start)
        on_close.append(("messaging-dispatcher", dispatcher.close))

    send_body = 64 * 1024 + config.max_batch * 2048
    return ModuleParts(
        route_handlers=route_handlers,
        route_groups=[
            RouteGroup(
                "/api/messages",
                RoutePolicy(tier="messaging_send", max_body_bytes=96 * 1024),
                methods={"POST"},
                exact=True,
            ),
            RouteGroup(
                "/api/messages/batch", RoutePolicy(tier="messaging_send", max_body_bytes=send_body), methods={"POST"}
            ),
            RouteGroup("/api/messages", RoutePolicy(tier="general"), methods={"GET"}),
            RouteGroup("/api/messaging", RoutePolicy(tier="general", max_body_bytes=16 * 1024)),
            # Meta signs the raw body; any media type is read as bytes and verified before it is parsed
            RouteGroup(
                "/webhooks/whatsapp", RoutePolicy(tier="messaging_webhook", max_body_bytes=1_048_576, media_types=())
            ),
        ],
        dependencies={
            "messaging": Provide(lambda: service, use_cache=True, sync_to_thread=False),
            "messaging_directory": Provide(lambda: directory, use_cache=True, sync_to_thread=False),
            "messaging_webhooks": Provide(lambda: webhooks, use_cache=True, sync_to_thread=False),
        },
        provides=[service],
        jobs=declared,
        # a warning in /health/ready (the API still accepts); `bastion messaging check` fails on it
        health_checks=[HealthCheck("messaging", probes.check, component_type="component", required=False, timeout=3.0)]
        if config.health_check
        else [],
        on_startup=on_startup,
        on_close=on_close,
    )


def _commands() -> Sequence[click.Command]:
    from bastion.messaging.cli import commands

    return commands()


def _problems(settings: Settings) -> list[Problem]:
    return list(settings.messaging.problems(settings.is_production))


MODULE: Module[Settings] = Module(
    name="messaging",
    settings=MessagingSettings,
    models="bastion.messaging.models",
    migrations=Path(__file__).parent / "migrations",
    tiers=[
        Quota("messaging_send", "600/minute"),
        Quota("messaging_webhook", "6000/minute"),
    ],
    problems=_problems,
    commands=_commands,
    build=build,
)
