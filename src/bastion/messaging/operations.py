"""What the operator commands do: read the dead-letter queue, and replay from it.

Replaying is the one place a status moves back: an operator decides that a message that failed for running out
of attempts is to be tried again, so it is set to "queued" with its attempts reset (and a "queued" entry with
source "replay" in its history), then published to the work queue with a confirm and acknowledged from the
dead queue. A message that was sent in the meantime is skipped by its wamid as usual.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from bastion.core.db import Database
from bastion.messaging.amqp import Topology, publish
from bastion.messaging.models import MessageRow, StatusRow

if TYPE_CHECKING:
    from bastion.settings import Settings


@dataclass(frozen=True)
class _Ops:
    db: Database


async def _open(settings: Settings) -> tuple[Any, Any, Topology]:
    import aio_pika

    if settings.amqp_url is None:
        raise SystemExit("the dead-letter queue exists only with BASTION_AMQP_URL")
    connection = await aio_pika.connect(settings.amqp_url.get_secret_value(), timeout=10)
    channel = await connection.channel(publisher_confirms=True)
    topology = Topology(settings.messaging)
    await topology.declare(channel)
    return connection, channel, topology


async def dead_letters(settings: Settings, limit: int) -> list[tuple[Any, ...]]:
    """(message id, status, attempts, error code, error reason) of up to ``limit`` parked messages; they stay."""
    connection, channel, topology = await _open(settings)
    queue = await channel.get_queue(topology.dead)
    held: list[Any] = []
    ids: list[str] = []
    try:
        while len(held) < limit:
            message = await queue.get(no_ack=False, fail=False)
            if message is None:
                break
            held.append(message)
            ids.append(message.body.decode())
    finally:
        for message in held:
            await message.nack(requeue=True)
        await connection.close()
    db = Database.from_settings(settings)
    try:
        async with db.engine.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(
                        MessageRow.id,
                        MessageRow.status,
                        MessageRow.attempts,
                        MessageRow.error_code,
                        MessageRow.error_reason,
                    ).where(MessageRow.id.in_(ids))
                )
            ).all()
    finally:
        await db.close()
    found = {row[0]: tuple(row) for row in rows}
    return [found.get(i, (i, "purged", 0, None, None)) for i in ids]


async def replay(settings: Settings, only: set[str]) -> int:
    import time

    connection, channel, topology = await _open(settings)
    queue = await channel.get_queue(topology.dead)
    ops = _Ops(Database.from_settings(settings))
    replayed, skipped = 0, []
    try:
        while True:
            message = await queue.get(no_ack=False, fail=False)
            if message is None:
                break
            message_id = message.body.decode()
            if only and message_id not in only:
                skipped.append(message)
                continue
            now = int(time.time() * 1000)
            async with ops.db.begin() as conn:
                await conn.execute(
                    sa.update(MessageRow)
                    .where(MessageRow.id == message_id, MessageRow.wamid.is_(None))
                    .values(
                        status="queued",
                        status_rank=1,
                        attempts=0,
                        lease_token=None,
                        lease_until_ms=None,
                        updated_at_ms=now,
                    )
                )
                await conn.execute(
                    sa.insert(StatusRow).values(message_id=message_id, status="queued", at_ms=now, source="replay")
                )
            await publish(channel, topology.work, message_id)
            await message.ack()
            replayed += 1
    finally:
        for message in skipped:
            await message.nack(requeue=True)
        await connection.close()
        await ops.db.close()
    return replayed


async def check_pipeline(settings: Settings) -> str | None:
    """What is wrong with the pipeline (see ``probes.Probes.check``), or None."""
    from bastion.core.broker import Broker
    from bastion.messaging.probes import PipelineUnhealthy, Probes

    db = Database.from_settings(settings)
    broker = Broker(settings.amqp_url.get_secret_value()) if settings.amqp_url else None
    try:
        await Probes(db, broker, settings.messaging).check()
    except PipelineUnhealthy as exc:
        return str(exc)
    finally:
        await db.close()
        if broker is not None:
            await broker.close()
    return None
