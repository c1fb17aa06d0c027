"""The notes module's descriptor."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from bastion.core.module import Module, ModuleContext, ModuleParts, Quota
from tests.modules.notes.settings import NotesSettings

if TYPE_CHECKING:
    from tests.modules.notes.app import NotesAppSettings


def build(ctx: ModuleContext[NotesAppSettings]) -> ModuleParts:
    from litestar.di import Provide

    from bastion.core.edge.asgi import RoutePolicy
    from bastion.core.edge.routes import RouteGroup
    from tests.modules.notes.router import route_handlers
    from tests.modules.notes.service import NotesService

    service = NotesService(ctx.platform.db, settings=ctx.settings.notes)
    return ModuleParts(
        route_handlers=route_handlers,
        route_groups=[RouteGroup("/api/notes", RoutePolicy(tier="notes", max_body_bytes=16_384))],
        dependencies={"notes": Provide(lambda: service, use_cache=True, sync_to_thread=False)},
    )


@click.command("notes-count")
def _count() -> None:
    """Print how many notes there are (a module's own CLI command)."""
    click.echo("notes: 0")


def _commands() -> Sequence[click.Command]:
    return [_count]


NOTES: Module[Any] = Module(
    name="notes",
    settings=NotesSettings,
    models="tests.modules.notes.models",
    migrations=Path(__file__).parent / "migrations",
    tiers=[Quota("notes", "30/minute")],
    problems=lambda settings: settings.notes.problems(settings.is_production),
    commands=_commands,
    build=build,
)
