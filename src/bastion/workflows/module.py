"""The workflows module's descriptor: the GoHighLevel workflow debugger (analysis engine, history, GHL)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from bastion.core.module import Module, ModuleContext, ModuleParts, Quota
from bastion.workflows.settings import WorkflowsSettings

if TYPE_CHECKING:
    from bastion.settings import Settings


def build(ctx: ModuleContext[Settings]) -> ModuleParts:
    from litestar.di import Provide

    from bastion.core.edge.asgi import RoutePolicy
    from bastion.core.edge.routes import RouteGroup
    from bastion.identity.service import Identity
    from bastion.workflows.history import History
    from bastion.workflows.router import Workflows, route_handlers
    from bastion.workflows.service import WorkflowsService

    platform, config = ctx.platform, ctx.settings.workflows
    identity = ctx.require(Identity)
    source = None
    if config.ghl_client_id:
        from bastion.workflows.ghl.client import GhlClient
        from bastion.workflows.ghl.source import GhlSource
        from bastion.workflows.ghl.tokens import Tokens

        client = GhlClient(platform.http, config, store=ctx.store)
        tokens = Tokens(
            platform.db,
            keyring=platform.keyring,
            client=client,
            margin_seconds=config.refresh_margin_seconds,
            wait_seconds=config.ghl_timeout_seconds + 5,
        )
        source = GhlSource(platform.db, tokens=tokens, client=client)
        # every GoHighLevel sign-in (a location's, or an agency's with user_type=Company) leaves its tokens here
        for name, provider in ctx.settings.identity.oauth_providers.items():
            if provider.preset == "gohighlevel":
                identity.on_oauth_signin(name, source.on_signin)
    service = WorkflowsService(platform.db, store=ctx.store, settings=config, source=source)
    parts = Workflows(
        service=service,
        history=History(platform.db, page_size=config.history_page_size),
        identity=identity,
        source=source,
    )
    definitions = RoutePolicy(tier="workflows_analyze", max_body_bytes=config.max_definition_bytes)
    return ModuleParts(
        route_handlers=route_handlers,
        route_groups=[
            RouteGroup("/api/analyze", definitions, methods={"POST"}, exact=True),
            RouteGroup("/api/workflows/import", definitions, methods={"POST"}, exact=True),
            RouteGroup("/api/workflows", RoutePolicy(tier="general"), methods={"GET"}),
            RouteGroup("/api/history", RoutePolicy(tier="general"), methods={"GET"}, exact=True),
            RouteGroup("/api/analysis", RoutePolicy(tier="general", max_body_bytes=0)),
            RouteGroup("/api/rules", RoutePolicy(tier="general"), methods={"GET"}, exact=True),
            RouteGroup("/api/overrides", RoutePolicy(tier="general", max_body_bytes=65_536), exact=True),
            RouteGroup("/api/agency", RoutePolicy(tier="general", max_body_bytes=0)),
        ],
        dependencies={"workflows": Provide(lambda: parts, use_cache=True, sync_to_thread=False)},
    )


MODULE: Module[Settings] = Module(
    name="workflows",
    settings=WorkflowsSettings,
    models="bastion.workflows.models",
    migrations=Path(__file__).parent / "migrations",
    tiers=[Quota("workflows_analyze", "30/minute")],
    build=build,
)
