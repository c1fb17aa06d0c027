"""The AI gateway's descriptor: one resilient upstream per configured provider, the service, routes and limits."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bastion.ai.settings import AiSettings
from bastion.core.module import Module, ModuleContext, ModuleParts, Quota

if TYPE_CHECKING:
    from bastion.settings import Settings


def build(ctx: ModuleContext[Settings]) -> ModuleParts:
    from litestar.di import Provide

    from bastion.ai.providers import HttpSessions, build_provider
    from bastion.ai.router import route_handlers
    from bastion.ai.service import AiService
    from bastion.ai.upstream import provider_upstream
    from bastion.core.edge.asgi import RoutePolicy
    from bastion.core.edge.routes import RouteGroup

    platform, config = ctx.platform, ctx.settings.ai
    sessions = HttpSessions()
    configured = config.all_providers()
    upstreams = {name: provider_upstream(name, provider) for name, provider in configured.items()}
    providers = {name: build_provider(name, provider, sessions) for name, provider in configured.items()}
    service = AiService(config, upstreams, providers, store=ctx.store, lifecycle=platform.lifecycle)
    policy = RoutePolicy(tier="ai", max_body_bytes=config.max_body_bytes)
    return ModuleParts(
        route_handlers=route_handlers,
        route_groups=[RouteGroup("/v1", policy), RouteGroup("/api/chat", policy), RouteGroup("/_spark/llm", policy)],
        dependencies={"ai_service": Provide(lambda: service, use_cache=True, sync_to_thread=False)},
        on_close=[("ai-http-sessions", sessions.close)],
    )


MODULE: Module[Settings] = Module(
    name="ai",
    settings=AiSettings,
    tiers=[Quota("ai", "10/minute")],
    problems=lambda settings: settings.ai.problems(settings.is_production),
    build=build,
)
