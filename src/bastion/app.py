"""``create_app(settings)``: the one place that wires the core and the modules into an ASGI app.

    app = create_app()                                   # settings from the environment, bastion.modules.MODULES
    app = create_app(Settings(env="production", ...))
    app = create_app(settings, extra_modules=[NOTES])    # Bastion and a module of your own (a ``Module``)

The result is the Litestar app wrapped in the edge, outermost first: context → telemetry → headers →
guards → (modules' ``before_admission`` hooks) → admission → error boundary → (modules' ``app`` hooks) →
Litestar. ``app.platform`` and ``app.litestar`` give tests and
tools the pieces.
"""

from __future__ import annotations

import asyncio
import os
import weakref
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, cast

from litestar import Litestar
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig

from bastion import __version__
from bastion.core import logging as core_logging
from bastion.core.dependencies import AppRequest
from bastion.core.edge.admission import AdmissionMiddleware
from bastion.core.edge.asgi import ASGIApp, Receive, RequestContext, RoutePolicy, Scope, Send
from bastion.core.edge.context import ContextMiddleware
from bastion.core.edge.errors import ErrorBoundaryMiddleware
from bastion.core.edge.guards import GuardsMiddleware
from bastion.core.edge.headers import HeadersMiddleware
from bastion.core.edge.routes import RouteGroup, RouteTable
from bastion.core.edge.telemetry import TelemetryMiddleware
from bastion.core.jobs.runner import JobRunner
from bastion.core.jsonbody import JsonDecoder
from bastion.core.module import Module, ModuleContext, ModuleParts, check_config, tier_rates
from bastion.core.observability import hooks
from bastion.core.openapi import ProblemJsonRenderPlugin, fix_options_allow
from bastion.core.ops import OPS_ROUTE_GROUPS, ops_router
from bastion.core.platform import Platform
from bastion.core.principal import Principal, PrincipalResolver
from bastion.core.problems import exception_handler
from bastion.modules import MODULES
from bastion.settings import Settings

_log = core_logging.get_logger("bastion.app")
_instances: weakref.WeakSet[Bastion] = weakref.WeakSet()


class Bastion:
    """The ASGI application: the edge around Litestar, with handles on its parts."""

    def __init__(self, asgi: Any, litestar: Litestar, platform: Platform, route_groups: Sequence[RouteGroup]) -> None:
        self._asgi = asgi
        self.litestar = litestar
        self.platform = platform
        self.route_groups = route_groups
        self.settings = platform.settings
        _instances.add(self)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._asgi(scope, receive, send)


def begin_drain_all() -> None:
    """Start draining every app in this process (the uvicorn runner calls it on SIGTERM)."""
    for app in list(_instances):
        app.platform.lifecycle.begin_drain()


def create_app(
    settings: Settings | None = None,
    *,
    modules: Sequence[Module[Settings]] | None = None,
    extra_modules: Sequence[Module[Any]] = (),
) -> Bastion:
    """The app of ``modules`` (by default :data:`bastion.modules.MODULES`) plus ``extra_modules``, in order."""
    settings = settings or Settings()
    listed: list[Module[Any]] = [*(MODULES if modules is None else modules), *extra_modules]
    core_logging.configure(level=settings.log_level, json=settings.json_logs)
    problems = check_config(settings, listed, os.environ)  # the environment too: misspelled BASTION_* names
    for problem in problems:
        (_log.error if problem.severity == "error" else _log.warning)(
            "configuration problem", setting=problem.setting, problem=problem.message
        )
    errors = [f"{p.setting}: {p.message}" for p in problems if p.severity == "error"]
    if settings.is_production and errors:
        raise SystemExit(f"refusing to start in production with unsafe configuration: {'; '.join(errors)}")

    platform = Platform.build(settings, version=__version__, tiers=tier_rates(settings, listed))
    if settings.sentry_dsn is not None:
        from bastion.core.observability import sentry  # the SDK is loaded only when a DSN is set

        sentry.setup(
            settings.sentry_dsn.get_secret_value(), settings.sentry, environment=settings.env, release=__version__
        )
        platform.lifecycle.on_close("sentry", sentry.close)
    if platform.tracing is not None:
        hooks.install_tracing(platform.tracing)  # for the upstream path, outbound clients, queue propagation
    parts = _build_modules(platform, settings, listed)
    jobs = JobRunner.for_platform(platform, [job for part in parts for job in part.jobs])  # names unique, or error

    resolvers = [p.principal_resolver for p in parts if p.principal_resolver is not None]
    resolver: PrincipalResolver | None = (
        None if not resolvers else resolvers[0] if len(resolvers) == 1 else _first_of(resolvers)
    )
    for part in parts:
        for check in part.health_checks:
            platform.health.add(check)
        for name, closer in part.on_close:
            platform.lifecycle.on_close(name, closer)

    litestar = Litestar(
        route_handlers=[ops_router, *(h for p in parts for h in p.route_handlers)],
        exception_handlers={Exception: exception_handler(settings.is_production)},
        dependencies={
            "platform": Provide(lambda: platform, use_cache=True, sync_to_thread=False),
            **{k: v for p in parts for k, v in p.dependencies.items()},
        },
        lifespan=[_lifespan(platform, settings, listed, parts, jobs)],
        request_class=AppRequest,  # request.context, .principal, .principal_or_none (core/dependencies.py)
        state=State({"platform": platform, "jobs": jobs, "json_decoder": JsonDecoder(settings.json_max_depth)}),
        openapi_config=OpenAPIConfig(
            title="Bastion",
            version=__version__,
            path="/schema",
            render_plugins=[ProblemJsonRenderPlugin()],  # every error documented as problem+json (core/openapi.py)
            create_examples=False,
        ),
        request_max_body_size=None,  # the guards stage enforces each route group's limit
        logging_config=None,
        debug=False,
    )

    fix_options_allow(litestar)
    groups: list[RouteGroup] = [*OPS_ROUTE_GROUPS, *(g for p in parts for g in p.route_groups)]
    unknown = sorted({g.policy.tier for g in groups if g.policy.tier is not None} - set(platform.limiter.tiers))
    if unknown:
        raise ValueError(f"route groups use undeclared rate-limit tiers {unknown}; declare them in Module.tiers")
    default = RoutePolicy(tier="general", max_body_bytes=settings.max_body_bytes)
    inner: ASGIApp = cast("ASGIApp", litestar)
    for hook in reversed([h for p in parts for h in p.edge_hooks if h.stage == "app"]):
        inner = hook.wrap(inner)  # the first module's hook is the outermost
    asgi: Any = ErrorBoundaryMiddleware(
        inner, production=settings.is_production, write_timeout=settings.response_write_timeout_seconds
    )
    asgi = AdmissionMiddleware(
        asgi, limiter=platform.limiter if settings.admission.enabled else None, resolver=resolver
    )
    for hook in reversed([h for p in parts for h in p.edge_hooks if h.stage == "before_admission"]):
        asgi = hook.wrap(asgi)
    asgi = GuardsMiddleware(
        asgi,
        routes=RouteTable(groups, default),
        allowed_methods=settings.allowed_methods,
        max_url_length=settings.max_url_length,
        max_header_bytes=settings.max_header_bytes,
        max_body_bytes=settings.max_body_bytes,
        lifecycle=platform.lifecycle,
        body_idle_timeout=settings.body_idle_timeout_seconds,
        body_timeout=settings.body_timeout_seconds,
    )
    asgi = HeadersMiddleware(
        asgi,
        allowed_hosts=settings.allowed_hosts,
        cors_origins=settings.cors_origins,
        cors_allow_credentials=settings.cors_allow_credentials,
        allowed_methods=settings.allowed_methods,
        hsts=settings.is_production,
    )
    asgi = TelemetryMiddleware(
        asgi,
        lifecycle=platform.lifecycle,
        metrics=platform.http_metrics,
        slow_request_ms=settings.slow_request_ms,
        tracing=platform.tracing,
    )
    asgi = ContextMiddleware(asgi, trusted_proxies=settings.trusted_proxies)
    return Bastion(asgi, litestar, platform, groups)


def _build_modules(platform: Platform, settings: Settings, modules: Sequence[Module[Any]]) -> list[ModuleParts]:
    """Each module's parts, in order; the services a module provides are offered to those after it."""
    names = [m.name for m in modules]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"modules listed twice: {twice}")
    provided: dict[type, object] = {}
    parts = []
    for module in modules:
        part = module.build(ModuleContext(platform, settings, provided, module.name))
        for service in part.provides:
            provided[type(service)] = service
        parts.append(part)
    return parts


def _first_of(resolvers: list[PrincipalResolver]) -> PrincipalResolver:
    """Several resolvers (e.g. identity plus one added by an embedding app): the first answer wins."""

    async def resolve(scope: Scope, ctx: RequestContext) -> Principal | None:
        for resolver in resolvers:
            principal = await resolver(scope, ctx)
            if principal is not None:
                return principal
        return None

    return resolve


def _lifespan(
    platform: Platform, settings: Settings, modules: Sequence[Module[Any]], parts: list[ModuleParts], jobs: JobRunner
) -> Any:
    @asynccontextmanager
    async def lifespan(_app: Litestar) -> AsyncIterator[None]:
        if settings.migrates_on_start:
            from bastion import migrate  # Alembic costs ~12 MB: loaded only where migrations run

            await asyncio.to_thread(migrate.upgrade, settings, modules)
        for part in parts:
            for hook in part.on_startup:
                await hook()
        await platform.lifecycle.start()
        jobs.start()  # stopped by the drain below (the runner subscribes to the lifecycle)
        try:
            yield
        finally:
            await platform.lifecycle.drain()

    return lifespan
