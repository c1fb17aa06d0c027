"""The Spark runtime's descriptor: the KV service over the SQL database, its routes and their edge policies."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from bastion.core.module import Module, ModuleContext, ModuleParts, Quota
from bastion.spark.settings import SparkSettings

if TYPE_CHECKING:
    from bastion.settings import Settings

# A 512-character key of four-byte characters is 6 KiB once percent-encoded, beyond the global URL limit.
KV_MAX_URL = 8192


def build(ctx: ModuleContext[Settings]) -> ModuleParts:
    from litestar.di import Provide

    from bastion.core.edge.asgi import RoutePolicy
    from bastion.core.edge.routes import RouteGroup
    from bastion.core.jsonbody import JsonDecoder
    from bastion.spark.router import KV_PATH, route_handlers
    from bastion.spark.service import KvService

    config = ctx.settings.spark
    kv = KvService(ctx.platform.db, config, JsonDecoder(ctx.settings.json_max_depth))
    return ModuleParts(
        route_handlers=route_handlers,
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
            RouteGroup(
                "/_spark/loaded", RoutePolicy(max_body_bytes=8192, media_types=("application/json", "text/plain"))
            ),
            # read by the client on every page load, often before the user has signed in: the general tier
            RouteGroup("/_spark/user", RoutePolicy(tier="general"), exact=True),
        ],
        dependencies={"spark_kv": Provide(lambda: kv, use_cache=True, sync_to_thread=False)},
    )


MODULE: Module[Settings] = Module(
    name="spark",
    settings=SparkSettings,
    models="bastion.spark.models",
    migrations=Path(__file__).parent / "migrations",
    tiers=[Quota("kv", "100/minute")],
    build=build,
)
