"""The trace of a message, kept with it (docs/architecture.md, "Tracing work that leaves the request").

The accept stores the request's W3C trace context in ``messaging_message.trace`` (JSON, NULL when tracing is
off); the relay continues it in a PRODUCER span and puts it in the AMQP headers, the consumer (or the embedded
dispatcher) continues it in a CONSUMER span around the delivery, so the WhatsApp call on core's upstream path is
its child and sends Meta the ``traceparent``; a status webhook about the message links its span to it.

Off (no ``BASTION_OTEL__ENDPOINT``), :func:`current` is None and nothing reads the column: no extra query.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import sqlalchemy as sa

from bastion.core.observability import hooks, propagation
from bastion.messaging.models import MessageRow

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection


def enabled() -> bool:
    return hooks.tracing is not None


def current() -> str | None:
    """The current trace context as stored in the column; None when tracing is off or no span is current."""
    carrier = propagation.inject({})
    return json.dumps(dict(carrier), separators=(",", ":")) if carrier else None


def carrier_of(stored: str | None) -> dict[str, str] | None:
    """The stored column read back; None when empty or unreadable (``continued`` then starts a new trace)."""
    if not stored:
        return None
    try:
        found = json.loads(stored)
    except ValueError:
        return None
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else None


async def of_messages(conn: AsyncConnection, message_ids: list[str]) -> dict[str, dict[str, str]]:
    """The stored carriers of these messages (those that have one); nothing is read when tracing is off."""
    if not message_ids or not enabled():
        return {}
    rows = await conn.execute(
        sa.select(MessageRow.id, MessageRow.trace).where(MessageRow.id.in_(message_ids), MessageRow.trace.is_not(None))
    )
    found = {row[0]: carrier_of(row[1]) for row in rows}
    return {k: v for k, v in found.items() if v}
