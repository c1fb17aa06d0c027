"""What a module brings to Bastion, declared once in its ``module.py``, and the app built from a list of them.

    MODULE = Module(
        name="secrets",                                  # its settings field and its migration branch
        settings=SecretsSettings,                        # the type of ``Settings.secrets``
        models="bastion.secrets.models",                 # its tables, for Alembic and the model registry
        migrations=Path(__file__).parent / "migrations", # its Alembic branch, labelled with its name
        tiers=[Quota("secrets_create", "10/minute", fail_closed=True), Quota("secrets_read", "60/minute")],
        problems=lambda settings: settings.secrets.problems(),   # for ``check-config`` and start-up
        commands=lambda: secrets_cli.commands,           # click commands, loaded only by the CLI
        build=build,                                     # (ModuleContext) -> ModuleParts, once per app
    )

``bastion.modules.MODULES`` lists the descriptors, in order; it is the one source of the app (routes, route
groups, jobs, health checks, principal resolvers), the CLI's commands, the models Alembic sees, the migration
branches and the rate-limit tier table. Django's ``INSTALLED_APPS`` with ``AppConfig.ready()`` and Litestar's
``InitPluginProtocol.on_app_init`` are the models: static facts on the descriptor, everything that needs a
running platform returned by ``build``. A module uses another through the service object that module
``provides`` and it asks for by type (``ctx.require(Identity)``), so the order of the list is the order of
dependence and a missing provider is an error at build time, not at the first request.

Descriptors are cheap to import (the CLI reads the list): a ``module.py`` imports its settings and core
types at the top and its routes, service and backends inside ``build``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from pydantic import BaseModel

from bastion.core.envcheck import unknown_variables
from bastion.core.settings import CoreSettings, Problem, Rate

if TYPE_CHECKING:
    # Only for annotations: the CLI imports every descriptor, and must not load prometheus_client before it
    # has set PROMETHEUS_MULTIPROC_DIR for the workers (the metrics would then be per process).
    import click

    from bastion.core.edge.asgi import ASGIApp
    from bastion.core.edge.routes import RouteGroup
    from bastion.core.health import HealthCheck
    from bastion.core.jobs.spec import Job
    from bastion.core.lifecycle import Closer
    from bastion.core.platform import Platform
    from bastion.core.principal import PrincipalResolver
    from bastion.core.stores.base import Store

S = TypeVar("S", bound=CoreSettings)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Quota:
    """A rate-limit tier a module's route groups use: its default rate (overridden by
    ``BASTION_RATE_LIMITS__<NAME>``) and whether it refuses requests (503) while the limiter's store is
    down instead of letting them through (overridden, for every tier, by ``BASTION_ADMISSION__FAIL_CLOSED_TIERS``).
    """

    name: str
    default: str
    fail_closed: bool = False

    def __post_init__(self) -> None:
        Rate.parse(self.default)  # a typo in a default fails at import, in every test run


@dataclass(frozen=True, slots=True)
class EdgeHook:
    """A pure-ASGI middleware a module adds to the edge, and where: ``"before_admission"`` runs after the
    guards and before the principal is resolved (it may rewrite the credentials the request carries, e.g.
    renew an expired session cookie); ``"app"`` runs after admission, around the Litestar app (it sees the
    principal and may answer by itself, e.g. serve files on a host of its own)."""

    stage: Literal["before_admission", "app"]
    wrap: Callable[[ASGIApp], ASGIApp]


@dataclass(kw_only=True)
class ModuleParts:
    """What a module's ``build`` returns: its part of one running app."""

    route_handlers: Sequence[Any] = ()
    route_groups: Sequence[RouteGroup] = ()
    dependencies: dict[str, Any] = field(default_factory=dict)
    """Litestar dependencies by name (``Provide(...)``), for this module's handlers."""
    provides: Sequence[object] = ()
    """Service objects other modules may ``require`` by type (a module's facade, e.g. ``Identity``)."""
    jobs: Sequence[Job] = ()
    health_checks: Sequence[HealthCheck] = ()
    principal_resolver: PrincipalResolver | None = None
    edge_hooks: Sequence[EdgeHook] = ()
    """Middleware of this module in the edge (see :class:`EdgeHook`), in the order of the module list."""
    on_startup: Sequence[Callable[[], Any]] = ()
    """Awaited in order when the app starts, after migrations, before the worker reports ready."""
    on_close: Sequence[tuple[str, Closer]] = ()
    """Run at shutdown after in-flight requests, before the platform's pools close (named for the log)."""


class ModuleContext(Generic[S]):
    """What ``build`` gets: the platform, the root settings, the module's own view of the fast store (its
    keys under ``<name>:``), and the services of the modules built before it."""

    def __init__(self, platform: Platform, settings: S, provided: dict[type, object], module: str) -> None:
        self.platform = platform
        self.settings = settings
        self.store: Store = platform.store.namespaced(f"{module}:")
        self._provided = provided
        self._module = module

    def require(self, kind: type[T]) -> T:
        """The service of type ``kind`` that a module listed earlier provides."""
        found = self.optional(kind)
        if found is None:
            raise LookupError(
                f"module {self._module!r} needs {kind.__name__}, which no module listed before it provides"
            )
        return found

    def optional(self, kind: type[T]) -> T | None:
        """The service of type ``kind`` if a module listed earlier provides it, else None."""
        for provided_type, service in self._provided.items():
            if issubclass(provided_type, kind):
                return service  # type: ignore[return-value]
        return None


@dataclass(frozen=True, kw_only=True)
class Module(Generic[S]):
    """A module's descriptor: the static facts, and ``build`` for the parts that need a running platform."""

    name: str
    """Unique; also the name of its settings field (``BASTION_<NAME>__…``) and of its migration branch."""
    build: Callable[[ModuleContext[S]], ModuleParts]
    settings: type[BaseModel] | None = None
    models: str | None = None
    """The dotted name of the module that declares its SQLAlchemy tables."""
    migrations: Path | None = None
    """The folder of its Alembic revisions (a branch labelled ``name``); required when it has ``models``."""
    tiers: Sequence[Quota] = ()
    problems: Callable[[S], Iterable[Problem]] | None = None
    commands: Callable[[], Sequence[click.Command]] | None = None


# -- the tier table and configuration problems, from a list of descriptors ----------------------------------


def declared_quotas(modules: Sequence[Module[Any]]) -> dict[str, Quota]:
    """Every tier: the core's ``general`` and those the modules declare (a name declared twice is an error)."""
    found: dict[str, Quota] = {
        "general": Quota("general", "60/minute"),
        # POST /cron/{job}: a scheduler calls a few times a minute; a job runner stays shut while Redis is down
        "cron": Quota("cron", "60/minute", fail_closed=True),
    }
    for module in modules:
        for quota in module.tiers:
            if quota.name in found:
                raise ValueError(f"rate-limit tier {quota.name!r} of module {module.name!r} is declared twice")
            found[quota.name] = quota
    return found


def tier_rates(settings: CoreSettings, modules: Sequence[Module[Any]]) -> dict[str, tuple[Rate, bool]]:
    """Each tier's rate (the override in ``BASTION_RATE_LIMITS__<TIER>`` else the declared default) and
    whether it fails closed. Configured tiers that no module declares are included (an embedding app may
    use them in its own route groups); ``check-config`` warns about them."""
    configured = settings.rate_limits.tiers()
    chosen = settings.admission.fail_closed_tiers
    table: dict[str, tuple[Rate, bool]] = {}
    for name, quota in declared_quotas(modules).items():
        rate = configured.get(name) or Rate.parse(quota.default)
        table[name] = (rate, quota.fail_closed if chosen is None else name in chosen)
    for name, rate in configured.items():
        if name not in table:
            table[name] = (rate, chosen is not None and name in chosen)
    return table


def check_config(settings: S, modules: Sequence[Module[S]], environ: Mapping[str, str] | None = None) -> list[Problem]:
    """Every unsafe or inconsistent setting: the core's, the tier table's, each module's own, and (given the
    environment) every ``BASTION_*`` variable no setting reads (an error in production, a warning otherwise)."""
    found = list(settings.problems())
    severity: Literal["error", "warning"] = "error" if settings.is_production else "warning"
    found.extend(
        Problem(severity, name, "no setting reads this variable (misspelled?); see docs/operations.md")
        for name in unknown_variables(type(settings), environ or {})
    )
    declared = declared_quotas(modules)
    configured = settings.rate_limits.tiers()
    found.extend(
        Problem(
            "warning",
            f"BASTION_RATE_LIMITS__{name.upper()}",
            f"no module declares the tier {name!r} (declared: {', '.join(sorted(declared))})",
        )
        for name in configured
        if name not in declared
    )
    found.extend(
        Problem("error", "BASTION_ADMISSION__FAIL_CLOSED_TIERS", f"unknown tier {name!r}")
        for name in settings.admission.fail_closed_tiers or ()
        if name not in declared and name not in configured
    )
    for module in modules:
        if module.problems is not None:
            found.extend(module.problems(settings))
    return found
