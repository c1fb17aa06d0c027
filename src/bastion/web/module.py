"""Builds the web module: the page's files, rendered once from the secrets module's limits."""

from __future__ import annotations

from litestar.di import Provide

from bastion.core.edge.asgi import RoutePolicy
from bastion.core.edge.routes import RouteGroup
from bastion.core.module import ModuleParts
from bastion.core.platform import Platform
from bastion.settings import Settings
from bastion.web.router import route_handlers
from bastion.web.service import Site, ttl_options


def build(_platform: Platform, settings: Settings) -> ModuleParts:
    if not settings.web.enabled:
        return ModuleParts(name="web")
    limits = settings.secrets
    # The form offers what an anonymous creator may choose; signed-in API callers may ask for more.
    site = Site.load(
        title=settings.web.title,
        max_views=limits.max_views,
        ttl_choices=ttl_options(limits.min_ttl_seconds, limits.max_ttl_anonymous_seconds, limits.default_ttl_seconds),
    )
    return ModuleParts(
        name="web",
        route_handlers=route_handlers,
        # The pages count against the general tier; the static files (in memory, cheap) do not.
        route_groups=[RouteGroup("/assets", RoutePolicy(tier=None))],
        dependencies={"web_site": Provide(lambda: site, use_cache=True, sync_to_thread=False)},
    )
