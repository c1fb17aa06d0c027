"""The ``bastion`` command: serve, migrate, check-config, new-master-key."""

from __future__ import annotations

import importlib.util
import math
import os
import shutil
import sys
from typing import Any

import click
from pydantic import ValidationError

from bastion.settings import Settings


def load_settings(**server: Any) -> Settings:
    """Settings from the environment, with the server options given on the command line."""
    try:
        settings = Settings()
    except ValidationError as exc:
        click.echo("Configuration is invalid:", err=True)
        for error in exc.errors():
            location = "__".join(str(part) for part in error["loc"]).upper()
            click.echo(f"  error: BASTION_{location}: {error['msg']}", err=True)
        sys.exit(2)
    overrides = {k: v for k, v in server.items() if v is not None}
    if overrides:
        settings = settings.model_copy(update={"server": settings.server.model_copy(update=overrides)})
    return settings


@click.group()
@click.version_option(package_name="bastion")
def main() -> None:
    """Bastion: a hardened backend platform."""


@main.command("check-config")
def check_config() -> None:
    """Print every configuration problem; exit 1 if any is an error."""
    settings = load_settings()
    problems = settings.problems()
    for problem in problems:
        click.echo(str(problem))
    errors = [p for p in problems if p.severity == "error"]
    mode = "production" if settings.is_production else "development"
    if errors:
        click.echo(f"{len(errors)} error(s) in {mode} mode.", err=True)
        sys.exit(1)
    click.echo(f"Configuration OK for {mode} ({len(problems)} warning(s)).")


@main.command()
def migrate() -> None:
    """Apply the database migrations (all module branches)."""
    from bastion import migrate as migrations

    settings = load_settings()
    migrations.upgrade(settings)
    click.echo("Database is up to date.")


@main.command("new-master-key")
def new_master_key() -> None:
    """Print a fresh encryption master key for BASTION_CRYPTO__KEYS."""
    from bastion.core.crypto import new_key

    click.echo(new_key())


@main.command()
@click.option("--host", default=None, help="Address to bind (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port to bind (default 8000).")
@click.option("--workers", type=int, default=None, help="Worker processes (default 1).")
@click.option("--server", type=click.Choice(["granian", "uvicorn"]), default=None, help="HTTP server.")
@click.option(
    "--loop", type=click.Choice(["uvloop", "asyncio"]), default=None, help="Event loop of the workers (default uvloop)."
)
@click.option(
    "--app",
    "factory",
    default="bastion.app:create_app",
    show_default=True,
    help="Factory that builds the app (to serve Bastion composed with your own modules).",
)
def serve(
    host: str | None, port: int | None, workers: int | None, server: str | None, loop: str | None, factory: str
) -> None:
    """Serve Bastion (the embedded default needs nothing else installed)."""
    settings = load_settings(host=host, port=port, workers=workers, server=server, loop=loop)
    problems = settings.problems()
    for problem in problems:
        click.echo(str(problem), err=True)
    if settings.is_production and any(p.severity == "error" for p in problems):
        click.echo("Refusing to start in production with unsafe configuration.", err=True)
        sys.exit(1)
    if settings.migrates_on_start:
        from bastion import migrate as migrations

        migrations.upgrade(settings)
        # Migrated once, here: the workers need not load Alembic (about 12 MB each) to find that out.
        os.environ["BASTION_AUTO_MIGRATE"] = "false"
    opts = settings.server
    if opts.workers > 1:
        _prepare_multiprocess_metrics(settings)
    if opts.loop == "uvloop" and importlib.util.find_spec("uvloop") is None:
        click.echo("uvloop is not installed here; serving on the asyncio loop", err=True)
        settings = settings.model_copy(update={"server": opts.model_copy(update={"loop": "asyncio"})})
        opts = settings.server
    click.echo(
        f"Bastion serving on http://{opts.host}:{opts.port} ({opts.server}, {opts.loop}, "
        f"{opts.workers} worker(s), {settings.env})",
        err=True,
    )
    if opts.server == "granian":
        _serve_granian(settings, factory)
    else:
        _serve_uvicorn(settings, factory)


def _prepare_multiprocess_metrics(settings: Settings) -> None:
    """Give the workers a fresh directory for their metric files (set before they start)."""
    directory = settings.data_dir.resolve() / "metrics"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)


def _serve_granian(settings: Settings, factory: str) -> None:
    from granian.constants import HTTPModes, Interfaces, Loops
    from granian.server import Server

    from bastion.runner import load_app

    opts = settings.server
    Server(
        factory,
        address=opts.host,
        port=opts.port,
        interface=Interfaces.ASGI,
        workers=opts.workers,
        factory=True,
        http=HTTPModes.http1,
        websockets=False,
        loop=Loops.uvloop if opts.loop == "uvloop" else Loops.asyncio,
        log_access=False,
        backlog=2048,
        respawn_failed_workers=True,
        workers_kill_timeout=math.ceil(settings.shutdown_grace_seconds) + 5,
    ).serve(target_loader=load_app)


def _serve_uvicorn(settings: Settings, factory: str) -> None:
    import functools

    import uvicorn

    from bastion.runner import load_app, run_uvicorn

    opts = settings.server
    config = uvicorn.Config(
        functools.partial(load_app, factory),  # picklable, for the workers uvicorn spawns
        factory=True,
        host=opts.host,
        port=opts.port,
        workers=opts.workers,
        server_header=False,
        access_log=False,
        loop=opts.loop,
        log_config=None,
        lifespan="on",
        timeout_graceful_shutdown=math.ceil(settings.shutdown_grace_seconds),
    )
    if opts.workers > 1:
        from uvicorn.supervisors import Multiprocess

        # Its workers run uvicorn's own Server; load_app makes them drain on the signal all the same.
        Multiprocess(config, sockets=[config.bind_socket()]).run()
    else:
        run_uvicorn(config)


from bastion.identity import cli as identity_cli  # noqa: E402 - the module groups, registered last

main.add_command(identity_cli.users)
main.add_command(identity_cli.keys)
