"""The identity module's descriptor: accounts, sessions, API keys, OAuth sign-in, and the principal resolver.

It provides :class:`bastion.identity.service.Identity` to the modules listed after it (``ctx.require(Identity)``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bastion.core.module import Module, ModuleContext, ModuleParts, Quota
from bastion.identity.settings import IdentitySettings

if TYPE_CHECKING:
    import click

    from bastion.settings import Settings

_SMALL_BODY = 16_384


def build(ctx: ModuleContext[Settings]) -> ModuleParts:
    from litestar.di import Provide

    from bastion.core.edge.asgi import RoutePolicy
    from bastion.core.edge.routes import RouteGroup
    from bastion.core.jobs.spec import Periodic
    from bastion.core.module import EdgeHook
    from bastion.identity.page_routes import route_handlers as page_handlers
    from bastion.identity.router import route_handlers
    from bastion.identity.sliding import SessionRenewer, SlidingSessionMiddleware
    from bastion.identity.wiring import IdentityParts

    parts = IdentityParts(ctx.platform, ctx.settings)
    config = ctx.settings.identity
    renewer = SessionRenewer(ctx.platform.db, signer=parts.signer, settings=config)
    hooks = (
        [
            EdgeHook(
                "before_admission",
                lambda app: SlidingSessionMiddleware(
                    app, renewer=renewer, settings=config, secure=parts.secure_cookies
                ),
            )
        ]
        if config.sliding_sessions
        else []
    )
    return ModuleParts(
        edge_hooks=hooks,
        route_handlers=[*route_handlers, *page_handlers],
        route_groups=[
            # The sign-in page: the general tier (its form posts to /auth/login, the auth tier); its files none.
            RouteGroup("/auth/signin", RoutePolicy(tier="general"), exact=True),
            RouteGroup("/auth/assets", RoutePolicy(tier=None)),
            # Sign-in, registration and OAuth: the auth tier per address (and, in signin.py, per account).
            RouteGroup("/auth", RoutePolicy(tier="auth", max_body_bytes=_SMALL_BODY)),
            # Polled by pages and called by every signed-in client: the general tier. A refresh token is
            # 256 random bits, so there is nothing to guess at these.
            RouteGroup("/auth/status", RoutePolicy(tier="general"), exact=True),
            RouteGroup("/auth/refresh", RoutePolicy(tier="general", max_body_bytes=_SMALL_BODY), exact=True),
            RouteGroup("/auth/logout", RoutePolicy(tier="general", max_body_bytes=_SMALL_BODY), exact=True),
            RouteGroup("/api/keys", RoutePolicy(max_body_bytes=_SMALL_BODY)),
            RouteGroup("/api/users", RoutePolicy(max_body_bytes=_SMALL_BODY)),
            RouteGroup("/api/invites", RoutePolicy(max_body_bytes=_SMALL_BODY)),
        ],
        # The parts, for this module's handlers; other modules get the facade (``provides``) instead.
        dependencies={"identity": Provide(lambda: parts, use_cache=True, sync_to_thread=False)},
        provides=[parts.facade],
        jobs=[
            # last-used times are batched in each worker's memory: every worker writes its own
            Periodic(
                name="identity.flush-touches",
                every=ctx.settings.identity.touch_interval_seconds,
                run=parts.flush_touches,
                record_success=False,
            ),
            Periodic(name="identity.purge-sessions", every=3600.0, run=parts.purge_expired, once_per_cluster=True),
        ],
        on_startup=[parts.start],
        on_close=[("identity", parts.close)],  # runs before the database closes
        principal_resolver=parts.resolver,
    )


def _commands() -> Sequence[click.Command]:
    from bastion.identity.cli import keys, users

    return [users, keys]


MODULE: Module[Settings] = Module(
    name="identity",
    settings=IdentitySettings,
    models="bastion.identity.models",
    migrations=Path(__file__).parent / "migrations",
    tiers=[Quota("auth", "5/minute", fail_closed=True)],
    problems=lambda settings: settings.identity.problems(settings.is_production),
    commands=_commands,
    build=build,
)
