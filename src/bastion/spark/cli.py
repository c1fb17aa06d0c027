"""``bastion spark …``: hosted Spark apps from the command line.

    bastion spark add notes ./dist --host notes.example.com [--public] [--replace]
    bastion spark list
    bastion spark remove notes

The apps are kept in the database (see apps.py), so every running worker and instance starts serving an
added app within ``BASTION_SPARK__APPS_REFRESH_SECONDS``, with no restart.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import click
from pydantic import ValidationError

from bastion.core.errors import AppError

if TYPE_CHECKING:
    from bastion.spark.apps import AppRegistry  # SQLAlchemy: loaded only when a command runs

T = TypeVar("T")


def _run(work: Callable[[AppRegistry], Awaitable[T]]) -> T:
    """Run ``work`` on the registry over the configured database; a domain error is one line and exit 1."""
    from bastion import __version__
    from bastion.cli import load_settings
    from bastion.core import logging as core_logging
    from bastion.core.module import tier_rates
    from bastion.core.platform import Platform
    from bastion.modules import MODULES
    from bastion.spark.apps import AppRegistry

    settings = load_settings()
    core_logging.configure(level="warning", json=False, stream=sys.stderr)

    async def main() -> T:
        if settings.migrates_on_start:
            from bastion import migrate

            await asyncio.to_thread(migrate.upgrade, settings)
        platform = Platform.build(settings, version=__version__, tiers=tier_rates(settings, MODULES))
        try:
            return await work(AppRegistry(platform.db, settings.spark))
        finally:
            await platform.lifecycle.drain()

    try:
        return asyncio.run(main())
    except AppError as exc:
        click.echo(f"error: {exc.detail}", err=True)
        sys.exit(1)
    except ValidationError as exc:
        click.echo(f"error: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}", err=True)
        sys.exit(1)


@click.group()
def spark() -> None:
    """Spark apps hosted on this Bastion."""


@spark.command("add")
@click.argument("name")
@click.argument("dist", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--host", required=True, help="The host name the app is served on, e.g. notes.example.com.")
@click.option("--public", is_flag=True, help="Let signed-out visitors in (default: private, sign-in first).")
@click.option("--replace", is_flag=True, help="Re-register an app of this name (a new dist/, host or access).")
def add(name: str, dist: Path, host: str, public: bool, replace: bool) -> None:
    """Serve the built app in DIST (vite build's dist/) on HOST, with its own KV namespace NAME."""
    app = _run(lambda registry: registry.add(name, host=host, dist=dist, public=public, replace=replace))
    access = "public" if app.public else "private (sign-in first)"
    click.echo(f"{app.name}: {app.dist} on {app.host}, {access}.")
    click.echo(f"Add {app.host} to BASTION_ALLOWED_HOSTS if it is not covered there.")


@spark.command("list")
def list_apps() -> None:
    """Every hosted app (from settings and from the database)."""

    async def apps(registry: AppRegistry) -> None:
        await registry.refresh()
        for app in registry.apps():
            click.echo(f"{app.name}\t{app.host}\t{'public' if app.public else 'private'}\t{app.dist}")

    _run(apps)


@spark.command("remove")
@click.argument("name")
def remove(name: str) -> None:
    """Stop serving the app NAME (its KV data is kept)."""
    if not _run(lambda registry: registry.remove(name)):
        click.echo(f"error: no app {name} was added with bastion spark add", err=True)
        sys.exit(1)
    click.echo(f"{name} removed.")
