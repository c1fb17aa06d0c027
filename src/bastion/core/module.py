"""What a module (identity, ai, spark, secrets, web, ...) gives the app when it is built.

    def build(platform: Platform, settings: Settings) -> ModuleParts:
        return ModuleParts(
            name="spark",
            route_handlers=[kv_router],
            route_groups=[RouteGroup("/_spark/kv", RoutePolicy(tier="kv", media_types=("text/plain",)))],
        )

``create_app`` collects the parts of every module: routes into Litestar, route groups into the edge,
start-up jobs and health checks into the platform, and at most one principal resolver.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bastion.core.edge.routes import RouteGroup
from bastion.core.health import HealthCheck
from bastion.core.principal import PrincipalResolver


@dataclass
class ModuleParts:
    name: str
    route_handlers: Sequence[Any] = ()
    route_groups: Sequence[RouteGroup] = ()
    dependencies: dict[str, Any] = field(default_factory=dict)
    on_startup: Sequence[Callable[[], Awaitable[None]]] = ()
    health_checks: Sequence[HealthCheck] = ()
    principal_resolver: PrincipalResolver | None = None
