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
    from bastion.core.jobs.spec import Periodic
    from bastion.identity.service import Identity
    from bastion.workflows.history import History
    from bastion.workflows.reanalyse import Reanalyser
    from bastion.workflows.router import Workflows, route_handlers
    from bastion.workflows.service import WorkflowsService
    from bastion.workflows.webhooks import Webhooks

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
    webhooks = Webhooks(
        platform.db,
        settings=config,
        on_install=source.install if source is not None else None,
        on_uninstall=source.disconnect if source is not None else None,
    )
    parts = Workflows(
        service=service,
        history=History(platform.db, page_size=config.history_page_size),
        identity=identity,
        source=source,
        webhooks=webhooks,
    )
    reanalyser = Reanalyser(platform.db, service)
    handlers = list(route_handlers)
    groups = []
    if ctx.settings.env == "development":  # the seed's /test/... endpoints; never registered in production
        from bastion.workflows.devtools import route_handlers as dev_handlers

        handlers += dev_handlers
        groups.append(
            RouteGroup("/test", RoutePolicy(tier="workflows_analyze", max_body_bytes=config.max_definition_bytes))
        )
    definitions = RoutePolicy(tier="workflows_analyze", max_body_bytes=config.max_definition_bytes)
    return ModuleParts(
        route_handlers=handlers,
        route_groups=[
            *groups,
            RouteGroup(
                "/webhooks/ghl",
                RoutePolicy(tier="workflows_webhooks", max_body_bytes=262_144),
                methods={"POST"},
                exact=True,
            ),
            RouteGroup("/webhooks/health", RoutePolicy(tier="general"), methods={"GET"}, exact=True),
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
        # re-analyses GHL webhooks queued; every worker runs it (rows are claimed one by one)
        jobs=[
            Periodic(
                name="workflows.reanalyse",
                every=config.reanalyse_every_seconds,
                run=reanalyser.run,
                record_success=False,
            )
        ],
    )


MODULE: Module[Settings] = Module(
    name="workflows",
    settings=WorkflowsSettings,
    models="bastion.workflows.models",
    migrations=Path(__file__).parent / "migrations",
    tiers=[Quota("workflows_analyze", "30/minute"), Quota("workflows_webhooks", "600/minute")],
    problems=lambda settings: settings.workflows.problems(),
    build=build,
)
