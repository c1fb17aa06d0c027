"""The messaging module's commands: ``bastion worker`` and ``bastion messaging dlq list|replay``.

    bastion worker --concurrency 32          # relay + consumers of the RabbitMQ path, drains on SIGTERM
    bastion messaging dlq list               # messages out of attempts: id, status, attempts, last error
    bastion messaging dlq replay [ID ...]    # back to the work queue with fresh attempts (all if no id)
    bastion messaging check                  # exit 1 if no consumer or the oldest unsent is too old

Imports stay inside the commands: the CLI must not load SQLAlchemy, aio-pika or prometheus_client up front.
"""

from __future__ import annotations

import asyncio

import click


@click.command("worker")
@click.option(
    "--concurrency", type=click.IntRange(1, 1024), default=16, show_default=True, help="Deliveries in flight."
)
def worker(concurrency: int) -> None:
    """Run the messaging relay and consumers (RabbitMQ path; needs BASTION_AMQP_URL)."""
    from bastion.cli import load_settings
    from bastion.messaging import worker as runner

    runner.main(load_settings(), concurrency)


@click.group("messaging")
def messaging() -> None:
    """Operate the messaging pipeline."""


@messaging.group("dlq")
def dlq() -> None:
    """The dead-letter queue: messages that ran out of attempts."""


@dlq.command("list")
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
def dlq_list(limit: int) -> None:
    """Print the parked messages (left in the queue)."""
    from bastion.cli import load_settings
    from bastion.messaging.operations import dead_letters

    for row in asyncio.run(dead_letters(load_settings(), limit)):
        click.echo("\t".join(str(v) for v in row))


@dlq.command("replay")
@click.argument("ids", nargs=-1)
def dlq_replay(ids: tuple[str, ...]) -> None:
    """Send parked messages again with fresh attempts (those named, else all)."""
    from bastion.cli import load_settings
    from bastion.messaging.operations import replay

    count = asyncio.run(replay(load_settings(), set(ids)))
    click.echo(f"{count} message(s) replayed.")


@messaging.command("check")
def check() -> None:
    """Exit 1 when no consumer is attached or the oldest unsent message is too old (a readiness probe)."""
    from bastion.cli import load_settings
    from bastion.messaging.operations import check_pipeline

    problem = asyncio.run(check_pipeline(load_settings()))
    if problem:
        click.echo(f"unhealthy: {problem}", err=True)
        raise SystemExit(1)
    click.echo("ok")


def commands() -> list[click.Command]:
    return [worker, messaging]
