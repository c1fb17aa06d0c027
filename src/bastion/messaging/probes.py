"""How the pipeline is doing: gauges for the metrics, and the checks readiness uses.

A queue nobody consumes is the classic silent loss (messages "lost" in RabbitMQ with no consumer attached,
and nothing alerted), and a stuck pipeline must be visible. So:

* ``check()`` fails when, with RabbitMQ configured, no consumer is attached to the work queue, or when the
  oldest due message that is not sent yet has waited longer than ``oldest_unsent_alert_seconds``. It is the
  exit status of ``bastion messaging check`` (the readiness probe of worker pods) and, with ``health_check``
  on, the ``messaging`` entry of the app's ``/health/ready`` (a warning there: the API itself still accepts).
* ``sample()`` (the ``messaging.gauges`` job) sets ``bastion_messaging_outbox_rows``,
  ``bastion_messaging_oldest_unsent_seconds``, ``bastion_messaging_queue_depth{queue}`` and
  ``bastion_messaging_messages{status}``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from bastion.core import metrics
from bastion.messaging import ledger
from bastion.messaging.amqp import Topology
from bastion.messaging.models import MessageRow, OutboxRow

if TYPE_CHECKING:
    from bastion.core.broker import Broker
    from bastion.core.db import Database
    from bastion.messaging.settings import MessagingSettings

_outbox = metrics.gauge("messaging_outbox_rows", "Outbox rows not yet handed on", mode="max")
_oldest = metrics.gauge("messaging_oldest_unsent_seconds", "Age of the oldest due message not sent yet", mode="max")
_depth = metrics.gauge("messaging_queue_depth", "Messages ready in the RabbitMQ queues", ("queue",), mode="max")
_by_status = metrics.gauge("messaging_messages", "Messages by current status", ("status",), mode="max")


class PipelineUnhealthy(Exception):
    pass


class Probes:
    def __init__(
        self,
        db: Database,
        broker: Broker | None,
        settings: MessagingSettings,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.broker = broker
        self.settings = settings
        self.topology = Topology(settings)
        self.clock = clock

    async def oldest_unsent_seconds(self) -> float:
        now = int(self.clock() * 1000)
        async with self.db.engine.connect() as conn:
            oldest = await ledger.oldest_unsent_ms(conn, now)
        return 0.0 if oldest is None else (now - oldest) / 1000

    async def queues(self) -> dict[str, tuple[int, int]]:
        """(ready messages, consumers) of the work and dead queues."""
        if self.broker is None:
            return {}
        connection = await self.broker.connection()
        channel: Any = await connection.channel()
        try:
            found = {}
            for name in (self.topology.work, self.topology.dead):
                queue = await channel.declare_queue(name, passive=True)
                found[name] = (queue.declaration_result.message_count, queue.declaration_result.consumer_count)
            return found
        finally:
            await channel.close()

    async def check(self) -> None:
        if self.broker is not None:
            try:
                queues = await self.queues()
            except Exception as exc:
                raise PipelineUnhealthy(f"the work queue cannot be inspected: {type(exc).__name__}") from exc
            if queues[self.topology.work][1] == 0:
                raise PipelineUnhealthy("no consumer is attached to the work queue (is bastion worker running?)")
        age = await self.oldest_unsent_seconds()
        if age > self.settings.oldest_unsent_alert_seconds:
            raise PipelineUnhealthy(f"the oldest unsent message has waited {age:.0f} s")

    async def sample(self) -> int:
        async with self.db.engine.connect() as conn:
            rows = (await conn.execute(sa.select(sa.func.count()).select_from(OutboxRow))).scalar_one()
            statuses = (
                await conn.execute(sa.select(MessageRow.status, sa.func.count()).group_by(MessageRow.status))
            ).all()
        _outbox.set(rows)
        for status in ledger.RANKS:
            _by_status.labels(status).set(0)
        for status, count in statuses:
            _by_status.labels(status).set(count)
        _oldest.set(await self.oldest_unsent_seconds())
        for name, (ready, _consumers) in (await self.queues()).items():
            _depth.labels(name.rsplit(".", 1)[1]).set(ready)
        return int(rows)
