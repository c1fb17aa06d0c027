"""The Spark runtime's descriptor: the KV service over the SQL database, its routes and their edge policies,
and the hosted apps (their files served on their own hosts, by an edge hook; ``bastion spark …``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bastion.core.module import Module, ModuleContext, ModuleParts, Quota
from bastion.core.settings import Problem
from bastion.spark.settings import SparkSettings

if TYPE_CHECKING:
    import click

    from bastion.settings import Settings

# A 512-character key of four-byte characters is 6 KiB once percent-encoded, beyond the global URL limit.
KV_MAX_URL = 8192


def build(ctx: ModuleContext[Settings]) -> ModuleParts:
    from litestar.di import Provide

    from bastion.core.edge.asgi import RoutePolicy
    from bastion.core.edge.routes import RouteGroup
    from bastion.core.jobs.spec import Periodic
    from bastion.core.jsonbody import JsonDecoder
    from bastion.core.module import EdgeHook
    from bastion.spark.apps import AppRegistry
    from bastion.spark.hosting import HostedAppsMiddleware
    from bastion.spark.router import DB_PATH, KV_PATH, route_handlers
    from bastion.spark.service import KvService

    config = ctx.settings.spark
    kv = KvService(ctx.platform.db, config, JsonDecoder(ctx.settings.json_max_depth))
    registry = AppRegistry(ctx.platform.db, config)
    return ModuleParts(
        route_handlers=route_handlers,
        edge_hooks=[EdgeHook("app", lambda app: HostedAppsMiddleware(app, registry=registry))],
        on_startup=[registry.refresh],
        jobs=[
            # each worker keeps its own copy of the app table (a host lookup is a dict read)
            Periodic(
                name="spark.refresh-apps",
                every=config.apps_refresh_seconds,
                run=registry.refresh,
                record_success=False,
            )
        ],
        route_groups=[
            # values arrive as text/plain (the client's choice); the service enforces the exact 1 MiB limit
            RouteGroup(
                KV_PATH,
                RoutePolicy(
                    tier="kv",
                    max_body_bytes=config.max_value_bytes + 65_536,
                    media_types=("text/plain", "application/json"),
                    max_url_length=KV_MAX_URL,
                ),
            ),
            RouteGroup(DB_PATH, RoutePolicy(tier="kv")),
            RouteGroup(
                "/_spark/loaded", RoutePolicy(max_body_bytes=8192, media_types=("application/json", "text/plain"))
            ),
            # read by the client on every page load, often before the user has signed in: the general tier
            RouteGroup("/_spark/user", RoutePolicy(tier="general"), exact=True),
        ],
        dependencies={
            "spark_kv": Provide(lambda: kv, use_cache=True, sync_to_thread=False),
            "spark_apps": Provide(lambda: registry, use_cache=True, sync_to_thread=False),
        },
    )


def _problems(settings: Settings) -> list[Problem]:
    """An app whose host the trusted-host check would refuse, or whose dist/ has no index.html."""
    found = []
    allowed = settings.allowed_hosts
    for app in settings.spark.apps:
        host_ok = "*" in allowed or any(
            app.host == h or (h.startswith("*.") and app.host.endswith(h[1:])) for h in allowed
        )
        if not host_ok:
            found.append(Problem("error", "BASTION_ALLOWED_HOSTS", f"add {app.host} (the host of the app {app.name})"))
        if not (app.dist / "index.html").is_file():
            found.append(Problem("error", "BASTION_SPARK__APPS", f"{app.name}: {app.dist} has no index.html"))
    return found


def _commands() -> Sequence[click.Command]:
    from bastion.spark.cli import spark

    return [spark]


MODULE: Module[Settings] = Module(
    name="spark",
    settings=SparkSettings,
    models="bastion.spark.models",
    migrations=Path(__file__).parent / "migrations",
    # Per signed-in user (per address when anonymous). useKV writes on every keystroke: 1200 a minute is a
    # burst of 1200 and 20 a second sustained, more than anyone types, while a script is stopped in seconds.
    tiers=[Quota("kv", "1200/minute")],
    problems=_problems,
    commands=_commands,
    build=build,
)
