"""The RabbitMQ path (``BASTION_AMQP_URL`` set): the relay from the outbox to the work queue, the consumer, and
delayed retries through TTL wait queues that dead-letter back to the work queue (no plug-in needed).

Queues (durable; the message body is the message id, persistent)::

    <prefix>.work            consumed by ``bastion worker``
    <prefix>.wait.<ms>       no consumer; x-message-ttl=<ms>, dead-lettered to the default exchange with
                             routing key <prefix>.work: a message waits there, then is back in the work queue
    <prefix>.dead            messages out of attempts, for an operator (``bastion messaging dlq list|replay``)

* **Relay**: claims due outbox rows (appending "queued"), publishes each with publisher confirms
  (``mandatory``: an unroutable message raises), and only after every confirm deletes the rows. A relay that dies
  between the confirm and the delete publishes those rows again when their claim runs out: consumers are
  idempotent (the lease and the wamid), so that costs a redelivery, never a second send.
* **Consumer**: delivers (``delivery.Delivery``), then: done → ack; retry → publish to the wait queue of the
  smallest tier not shorter than the delay (confirmed), then ack; dead → publish to the dead queue, then ack.
  An error (the database is down) → nack with requeue after a pause. A consumer killed mid-delivery leaves
  the message unacknowledged: RabbitMQ redelivers it, and the lease or the wamid decide.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bastion.core import metrics
from bastion.core.logging import get_logger
from bastion.core.observability import propagation
from bastion.messaging import ledger, traces

if TYPE_CHECKING:
    from bastion.core.db import Database
    from bastion.messaging.delivery import Delivery
    from bastion.messaging.settings import MessagingSettings

log = get_logger("bastion.messaging")
_published = metrics.counter("messaging_relayed_total", "Outbox rows published to RabbitMQ with a confirm")
_outbox_lag = metrics.histogram("messaging_outbox_lag_seconds", "From due to published, per relayed row")
RELAY_HOLD_MS = 15_000
"""How long a relay holds the rows it is publishing; a relay that dies frees them after this."""


class Topology:
    """Queue names and their declaration, the same for the relay, the consumers and the CLI."""

    def __init__(self, settings: MessagingSettings) -> None:
        prefix = settings.queue_prefix
        self.work = f"{prefix}.work"
        self.dead = f"{prefix}.dead"
        tiers = {1000, *(int(d * 1000) for d in settings.retry_delays_seconds if d > 0)}
        self.tiers = sorted(tiers)

    def wait_queue(self, delay: float) -> str:
        """The wait queue for a delay: the smallest tier not shorter than it (the longest if none is)."""
        ms = int(delay * 1000)
        tier = next((t for t in self.tiers if t >= ms), self.tiers[-1])
        return f"{self.work.removesuffix('.work')}.wait.{tier}"

    async def declare(self, channel: Any) -> Any:
        work = await channel.declare_queue(self.work, durable=True)
        await channel.declare_queue(self.dead, durable=True)
        for tier in self.tiers:
            await channel.declare_queue(
                self.wait_queue(tier / 1000),
                durable=True,
                arguments={
                    "x-message-ttl": tier,
                    "x-dead-letter-exchange": "",
                    "x-dead-letter-routing-key": self.work,
                },
            )
        return work


async def publish(channel: Any, queue: str, message_id: str, headers: dict[str, Any] | None = None) -> None:
    """Publish one message id, persistent, and wait for the broker's confirm (raises on a nack or no route)."""
    import aio_pika

    message = aio_pika.Message(
        message_id.encode(),
        message_id=message_id,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        headers=headers or {},
    )
    await channel.default_exchange.publish(message, routing_key=queue, mandatory=True)


class Relay:
    def __init__(self, db: Database, settings: MessagingSettings, *, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.settings = settings
        self.topology = Topology(settings)
        self.clock = clock

    async def relay_once(self, channel: Any) -> int:
        """Publish the due outbox rows (confirmed), then delete them; how many."""
        now = int(self.clock() * 1000)
        async with self.db.begin() as conn:
            rows = await ledger.claim_due(conn, now, 500, RELAY_HOLD_MS)
            # "queued" before the publish: a consumer may send (and record "sent") before the relay's next
            # transaction; if the publish fails, the rows stay in the outbox and are published again
            await ledger.mark_queued(conn, [message_id for _, message_id in rows], now)
            carriers = await traces.of_messages(conn, [message_id for _, message_id in rows])
        if not rows:
            return 0
        await asyncio.gather(*(self._publish(channel, message_id, carriers.get(message_id)) for _, message_id in rows))
        async with self.db.begin() as conn:
            await ledger.delete_outbox(conn, [outbox_id for outbox_id, _ in rows])
        _published.inc(len(rows))
        _outbox_lag.observe(max(0.0, self.clock() - now / 1000))
        return len(rows)

    async def _publish(self, channel: Any, message_id: str, carrier: dict[str, str] | None) -> None:
        """Publish in a PRODUCER span continuing the message's trace; its context goes in the headers."""
        queue = self.topology.work
        attributes = {"messaging.system": "rabbitmq", "messaging.destination.name": queue}
        with propagation.continued(carrier, "messaging.publish", kind="producer", attributes=attributes):
            await publish(channel, queue, message_id, dict(propagation.inject({})))


class Consumer:
    def __init__(self, delivery: Delivery, settings: MessagingSettings) -> None:
        self.delivery = delivery
        self.topology = Topology(settings)
        self.in_flight = 0
        self.idle = asyncio.Event()
        self.idle.set()

    async def handle(self, channel: Any, message: Any) -> None:
        """One delivery of one queue message; acknowledged only once its outcome is recorded."""
        self.in_flight += 1
        self.idle.clear()
        try:
            message_id = message.body.decode()
            attributes = {"messaging.system": "rabbitmq", "messaging.destination.name": self.topology.work}
            try:
                # a CONSUMER span continuing the publisher's (the WhatsApp call is its child); a retry or a
                # dead letter carries this span's context on
                with propagation.continued(
                    message.headers, "messaging.process", kind="consumer", attributes=attributes
                ):
                    outcome = await self.delivery.deliver(message_id)
                    headers = dict(propagation.inject({}))
                    if outcome.kind == "retry":
                        await publish(channel, self.topology.wait_queue(outcome.delay), message_id, headers)
                    elif outcome.kind == "dead":
                        await publish(channel, self.topology.dead, message_id, headers)
            except Exception as exc:
                log.warning("messaging.consume_error", message_id=message_id, error=f"{type(exc).__name__}"[:100])
                await asyncio.sleep(1.0)  # the database or broker is down: do not spin on the redelivery
                await message.nack(requeue=True)
                return
            await message.ack()
        finally:
            self.in_flight -= 1
            if self.in_flight == 0:
                self.idle.set()
