"""The secrets module's descriptor: one-time secrets on SQL or Redis, their limits and their purge job."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from bastion.core.module import Module, ModuleContext, ModuleParts, Quota
from bastion.secrets.settings import SecretsSettings

if TYPE_CHECKING:
    from bastion.core.platform import Platform
    from bastion.secrets.backends.base import SecretBackend
    from bastion.settings import Settings


def make_backend(platform: Platform, config: SecretsSettings) -> SecretBackend:
    if config.backend == "redis":
        if platform.redis is None:
            raise SystemExit("BASTION_SECRETS__BACKEND=redis needs BASTION_REDIS_URL")
        from bastion.secrets.backends.redis import RedisBackend  # loads redis-py only when used

        return RedisBackend(
            platform.redis, prefix=platform.settings.redis_prefix, retention_ms=config.audit_retention_seconds * 1000
        )
    from bastion.secrets.backends.sql import SqlBackend

    return SqlBackend(platform.db)


def build(ctx: ModuleContext[Settings]) -> ModuleParts:
    from litestar.di import Provide

    from bastion.core.edge.asgi import RoutePolicy
    from bastion.core.edge.routes import RouteGroup
    from bastion.core.jobs.spec import Periodic
    from bastion.secrets.router import route_handlers
    from bastion.secrets.service import SecretsService

    platform, config = ctx.platform, ctx.settings.secrets
    service = SecretsService(make_backend(platform, config), keyring=platform.keyring, store=ctx.store, settings=config)

    return ModuleParts(
        route_handlers=route_handlers,
        route_groups=[
            RouteGroup(
                "/api/secrets",
                RoutePolicy(tier="secrets_create", max_body_bytes=config.max_body_bytes),
                methods={"POST"},
                exact=True,
            ),
            # the signed-in owner's list of their secrets
            RouteGroup("/api/secrets", RoutePolicy(tier="general"), methods={"GET"}, exact=True),
            # metadata, reveal, burn and audit of one secret (a reveal body is at most a passphrase)
            RouteGroup("/api/secrets/{id}", RoutePolicy(tier="secrets_read", max_body_bytes=4096)),
        ],
        dependencies={"secrets_service": Provide(lambda: service, use_cache=True, sync_to_thread=False)},
        # Expired secrets and old audit trails go, on one instance of the cluster at a time: running it on every
        # worker was harmless but did the same deletes N times.
        jobs=[
            Periodic(
                name="secrets.purge",
                every=config.purge_interval_seconds,
                jitter=0.2,
                run=service.purge,
                once_per_cluster=True,
            )
        ],
    )


MODULE: Module[Settings] = Module(
    name="secrets",
    settings=SecretsSettings,
    models="bastion.secrets.models",
    migrations=Path(__file__).parent / "migrations",
    tiers=[Quota("secrets_create", "10/minute", fail_closed=True), Quota("secrets_read", "60/minute")],
    build=build,
)
