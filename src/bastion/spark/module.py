"""Builds the Spark runtime: the KV service over the SQL database, its routes and their edge policies."""

from __future__ import annotations

from litestar.di import Provide

from bastion.core.edge.asgi import RoutePolicy
from bastion.core.edge.routes import RouteGroup
from bastion.core.module import ModuleParts
from bastion.core.platform import Platform
from bastion.settings import Settings
from bastion.spark.router import KV_PATH, route_handlers
from bastion.spark.service import KvService

# A 512-character key of four-byte characters is 6 KiB once percent-encoded, beyond the global URL limit.
KV_MAX_URL = 8192


def build(platform: Platform, settings: Settings) -> ModuleParts:
    config = settings.spark
    kv = KvService(platform.db, config)
    return ModuleParts(
        name="spark",
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
        ],
        dependencies={"spark_kv": Provide(lambda: kv, use_cache=True, sync_to_thread=False)},
    )
