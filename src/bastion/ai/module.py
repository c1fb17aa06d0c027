"""Builds the AI gateway: one resilient upstream per configured provider, the service, routes and limits."""

from __future__ import annotations

from litestar.di import Provide

from bastion.ai.providers import HttpSessions, build_provider
from bastion.ai.router import route_handlers
from bastion.ai.service import AiService
from bastion.ai.upstream import Upstream
from bastion.core.edge.asgi import RoutePolicy
from bastion.core.edge.routes import RouteGroup
from bastion.core.module import ModuleParts
from bastion.core.platform import Platform
from bastion.settings import Settings


def build(platform: Platform, settings: Settings) -> ModuleParts:
    config = settings.ai
    sessions = HttpSessions()
    platform.lifecycle.on_close("ai-http-sessions", sessions.close)
    upstreams = {
        name: Upstream(name, provider, build_provider(name, provider, sessions))
        for name, provider in config.all_providers().items()
    }
    service = AiService(config, upstreams, store=platform.store, lifecycle=platform.lifecycle)
    policy = RoutePolicy(tier="ai", max_body_bytes=config.max_body_bytes)
    return ModuleParts(
        name="ai",
        route_handlers=route_handlers,
        route_groups=[RouteGroup("/v1", policy), RouteGroup("/api/chat", policy), RouteGroup("/_spark/llm", policy)],
        dependencies={"ai_service": Provide(lambda: service, use_cache=True, sync_to_thread=False)},
    )
