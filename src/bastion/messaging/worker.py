"""``bastion worker``: the relay and the consumers of the RabbitMQ path, in their own process.

    BASTION_AMQP_URL=amqp://… BASTION_DATABASE_URL=postgresql+asyncpg://… BASTION_REDIS_URL=redis://… \
        bastion worker --concurrency 32

* Connects with backoff (0.5 s doubling to 30 s, with jitter) until the broker answers; aio-pika's robust
  connection then re-opens the connection, its channels, queues and consumer by itself after a failure, and
  the relay retries what it could not publish (its rows stay in the outbox).
* ``--concurrency`` is the prefetch: deliveries in flight at once in this process. Limits (per number, per
  recipient) are in the shared store, so any number of workers respect them together.
* SIGTERM or SIGINT drains: the consumer is cancelled (no new deliveries), the relay stops, deliveries in
  flight finish and are acknowledged within ``BASTION_SHUTDOWN_GRACE_SECONDS``, then the process exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
from typing import TYPE_CHECKING, Any

from bastion.core.logging import get_logger

if TYPE_CHECKING:
    from bastion.settings import Settings

log = get_logger("bastion.messaging.worker")


async def connect_with_backoff(url: str, stop: asyncio.Event) -> Any:
    import aio_pika

    wait = 0.5
    while not stop.is_set():
        try:
            return await aio_pika.connect_robust(url, timeout=5.0, reconnect_interval=1.0)
        except Exception as exc:
            log.warning("messaging.broker_unreachable", retry_in=round(wait, 2), error=type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait * random.uniform(0.8, 1.2))
            wait = min(30.0, wait * 2)
    return None


async def run(settings: Settings, *, concurrency: int, stop: asyncio.Event | None = None) -> None:
    from bastion import __version__
    from bastion.core.platform import Platform
    from bastion.messaging.amqp import Consumer, Relay
    from bastion.messaging.module import make_delivery

    if settings.amqp_url is None:
        raise SystemExit("bastion worker needs BASTION_AMQP_URL (without it, the app's own dispatcher sends)")
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    config = settings.messaging
    platform = Platform.build(settings, version=__version__)
    if platform.tracing is not None:
        from bastion.core.observability import hooks

        hooks.install_tracing(platform.tracing)  # the relay, consumer and WhatsApp call continue messages' traces
    delivery = make_delivery(platform, config, platform.store.namespaced("messaging:"))
    relay, consumer = Relay(platform.db, config), Consumer(delivery, config)
    connection = await connect_with_backoff(settings.amqp_url.get_secret_value(), stop)
    if connection is None:
        await platform.lifecycle.drain()
        return
    channel = await connection.channel(publisher_confirms=True)
    await channel.set_qos(prefetch_count=concurrency)
    work = await relay.topology.declare(channel)
    relay_channel = await connection.channel(publisher_confirms=True)
    tag = await work.consume(lambda message: consumer.handle(channel, message), no_ack=False)
    relay_task = asyncio.create_task(_relay_loop(relay, relay_channel, stop, config.poll_seconds))
    log.info("messaging.worker_ready", queue=relay.topology.work, concurrency=concurrency)
    await stop.wait()

    log.info("messaging.worker_draining", in_flight=consumer.in_flight)
    with contextlib.suppress(Exception):
        await work.cancel(tag)
    relay_task.cancel()
    await asyncio.gather(relay_task, return_exceptions=True)

    async def in_flight_done() -> None:
        await consumer.idle.wait()

    platform.lifecycle.finish_on_drain("messaging-consumer", in_flight_done)
    await platform.lifecycle.drain()  # waits for in-flight deliveries (within the grace), then closes the pools
    with contextlib.suppress(Exception):
        await connection.close()
    log.info("messaging.worker_stopped")


async def _relay_loop(relay: Any, channel: Any, stop: asyncio.Event, poll: float) -> None:
    wait = poll
    while not stop.is_set():
        try:
            handled = await relay.relay_once(channel)
            wait = poll
        except Exception as exc:  # broker or database away: the rows stay in the outbox, try again
            log.warning("messaging.relay_error", error=f"{type(exc).__name__}: {exc}"[:200])
            handled, wait = 0, min(10.0, wait * 2)
        if handled == 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)


def main(settings: Settings, concurrency: int) -> None:
    from bastion.core import logging as core_logging

    core_logging.configure(level=settings.log_level, json=settings.json_logs)
    if settings.amqp_url is None:
        raise SystemExit("bastion worker needs BASTION_AMQP_URL (without it, the app's own dispatcher sends)")
    if settings.migrates_on_start:
        from bastion import migrate

        migrate.upgrade(settings)
    try:
        import uvloop

        uvloop.run(run(settings, concurrency=concurrency))
    except ImportError:
        asyncio.run(run(settings, concurrency=concurrency))
