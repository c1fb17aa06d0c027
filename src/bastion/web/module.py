"""The web module's descriptor: the secrets page's files, rendered once from the secrets module's limits."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bastion.core.module import Module, ModuleContext, ModuleParts
from bastion.web.settings import WebSettings

if TYPE_CHECKING:
    from bastion.settings import Settings


def build(ctx: ModuleContext[Settings]) -> ModuleParts:
    from litestar.di import Provide

    from bastion.core.edge.asgi import RoutePolicy
    from bastion.core.edge.routes import RouteGroup
    from bastion.web.router import route_handlers
    from bastion.web.service import Site, ttl_options

    settings = ctx.settings
    if not settings.web.enabled:
        return ModuleParts()
    limits = settings.secrets
    # The form offers what an anonymous creator may choose; signed-in API callers may ask for more.
    site = Site.load(
        title=settings.web.title,
        max_views=limits.max_views,
        ttl_choices=ttl_options(limits.min_ttl_seconds, limits.max_ttl_anonymous_seconds, limits.default_ttl_seconds),
    )
    return ModuleParts(
        route_handlers=route_handlers,
        # The pages count against the general tier; the static files (in memory, cheap) do not.
        route_groups=[
            RouteGroup("/", RoutePolicy(tier="general"), exact=True),
            RouteGroup("/s/{id}", RoutePolicy(tier="general"), exact=True),
            RouteGroup("/assets", RoutePolicy(tier=None)),
        ],
        dependencies={"web_site": Provide(lambda: site, use_cache=True, sync_to_thread=False)},
    )


MODULE: Module[Settings] = Module(name="web", settings=WebSettings, build=build)
