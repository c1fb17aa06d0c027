"""The state of messages in SQL: the append-only status history, the per-message attempt lease and the outbox.

Ranks order the statuses; a message's ``status`` only ever moves to a higher rank (webhooks arrive in any
order). ``failed`` ranks last: a failure Meta reports after "sent" (131026 undeliverable) is what stays.

The lease (``lease_token``, ``lease_until_ms``) makes one attempt at the API the holder's alone: claiming
is a conditional UPDATE (no wamid yet, not finished, lease free or expired), so two workers given the same
message by a redelivery cannot both send it. The wamid is stored as soon as Meta answers, in its own commit,
before anything is acknowledged; a message with a wamid is never sent again.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import sqlalchemy as sa

from bastion.messaging.models import ContactRow, EarlyStatusRow, MessageRow, OutboxRow, StatusRow

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

RANKS = {"accepted": 0, "queued": 1, "sent": 2, "delivered": 3, "read": 4, "failed": 5}
SENT_RANK = RANKS["sent"]

# Core tables: these statements run on connections, and read better with columns as ``_message.c.x``
_message = cast("sa.Table", MessageRow.__table__)
_status = cast("sa.Table", StatusRow.__table__)
_outbox = cast("sa.Table", OutboxRow.__table__)


@dataclass(frozen=True, slots=True)
class Claimed:
    """A message whose attempt lease this worker holds."""

    id: str
    token: str
    to_phone: str
    kind: str
    text: str | None
    template_name: str | None
    template_language: str | None
    params: str | None
    attempts: int


async def append_status(
    conn: AsyncConnection,
    message_id: str,
    status: str,
    at_ms: int,
    *,
    source: str,
    code: int | None = None,
    reason: str | None = None,
) -> bool:
    """Append ``status`` to the history; move the current status up to it if it ranks higher (True then)."""
    rank = RANKS[status]
    await conn.execute(
        sa.insert(_status).values(
            message_id=message_id, status=status, at_ms=at_ms, source=source, code=code, reason=reason
        )
    )
    values: dict[str, object] = {"status": status, "status_rank": rank, "updated_at_ms": at_ms}
    if code is not None:
        values.update(error_code=code, error_reason=reason)
    moved = await conn.execute(
        sa.update(_message).where(_message.c.id == message_id, _message.c.status_rank < rank).values(**values)
    )
    return bool(moved.rowcount)


async def claim(conn: AsyncConnection, message_id: str, now_ms: int, lease_ms: int) -> Claimed | None:
    """Take the attempt lease of a message not yet sent nor finished, or None (done, or another holds it)."""
    token = secrets.token_hex(8)
    row = (
        await conn.execute(
            sa.update(_message)
            .where(
                _message.c.id == message_id,
                _message.c.wamid.is_(None),
                _message.c.status_rank < SENT_RANK,
                sa.or_(_message.c.lease_until_ms.is_(None), _message.c.lease_until_ms < now_ms),
            )
            .values(
                lease_token=token,
                lease_until_ms=now_ms + lease_ms,
                attempts=_message.c.attempts + 1,
                updated_at_ms=now_ms,
            )
            .returning(
                _message.c.to_phone,
                _message.c.kind,
                _message.c.text,
                _message.c.template_name,
                _message.c.template_language,
                _message.c.params,
                _message.c.attempts,
            )
        )
    ).first()
    if row is None:
        return None
    return Claimed(message_id, token, *row)


async def record_sent(conn: AsyncConnection, message_id: str, wamid: str, now_ms: int) -> None:
    """Store Meta's answer: the wamid, the lease released, "sent" in the history."""
    await conn.execute(
        sa.update(_message)
        .where(_message.c.id == message_id, _message.c.wamid.is_(None))
        .values(wamid=wamid, lease_token=None, lease_until_ms=None, updated_at_ms=now_ms)
    )
    await append_status(conn, message_id, "sent", now_ms, source="worker")
    early = cast("sa.Table", EarlyStatusRow.__table__)
    found = (
        await conn.execute(
            sa.delete(early)
            .where(early.c.wamid == wamid)
            .returning(early.c.status, early.c.at_ms, early.c.code, early.c.reason)
        )
    ).all()
    for status, at_ms, code, reason in found:
        await append_status(conn, message_id, status, at_ms, source="webhook", code=code, reason=reason)


async def release(conn: AsyncConnection, claimed: Claimed, now_ms: int, code: int | None, reason: str) -> None:
    """Give the lease back after an attempt that will be retried, noting why."""
    await conn.execute(
        sa.update(_message)
        .where(_message.c.id == claimed.id, _message.c.lease_token == claimed.token)
        .values(lease_token=None, lease_until_ms=None, error_code=code, error_reason=reason[:500], updated_at_ms=now_ms)
    )


async def fail(conn: AsyncConnection, message_id: str, now_ms: int, code: int | None, reason: str) -> None:
    await conn.execute(
        sa.update(_message).where(_message.c.id == message_id).values(lease_token=None, lease_until_ms=None)
    )
    await append_status(conn, message_id, "failed", now_ms, source="worker", code=code, reason=reason[:500])


async def suppress_phone(conn: AsyncConnection, phone: str, code: int) -> None:
    await conn.execute(sa.update(ContactRow).where(ContactRow.phone == phone).values(suppressed_code=code))


async def is_finished(conn: AsyncConnection, message_id: str) -> bool | None:
    """True when sent or failed (nothing more to do), False when not, None when there is no such message."""
    row = (
        await conn.execute(sa.select(_message.c.status_rank, _message.c.wamid).where(_message.c.id == message_id))
    ).first()
    if row is None:
        return None
    return row[1] is not None or row[0] >= SENT_RANK


# -- the outbox ---------------------------------------------------------------------------------------------


async def claim_due(conn: AsyncConnection, now_ms: int, limit: int, hold_ms: int) -> list[tuple[int, str]]:
    """Claim up to ``limit`` due outbox rows for ``hold_ms`` (a claimer that dies frees them after it)."""
    due = (
        sa.select(_outbox.c.id)
        .where(_outbox.c.available_at_ms <= now_ms, _outbox.c.claimed_until_ms < now_ms)
        .order_by(_outbox.c.available_at_ms)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    rows = (
        await conn.execute(
            sa.update(_outbox)
            .where(_outbox.c.id.in_(due.scalar_subquery()), _outbox.c.claimed_until_ms < now_ms)
            .values(claimed_until_ms=now_ms + hold_ms)
            .returning(_outbox.c.id, _outbox.c.message_id)
        )
    ).all()
    return [(row[0], row[1]) for row in rows]


async def delete_outbox(conn: AsyncConnection, ids: list[int]) -> None:
    if ids:
        await conn.execute(sa.delete(_outbox).where(_outbox.c.id.in_(ids)))


async def postpone(conn: AsyncConnection, outbox_id: int, at_ms: int) -> None:
    await conn.execute(
        sa.update(_outbox).where(_outbox.c.id == outbox_id).values(available_at_ms=at_ms, claimed_until_ms=0)
    )


async def oldest_unsent_ms(conn: AsyncConnection, now_ms: int) -> int | None:
    """When the oldest due message that is not yet sent was due (None: nothing waits)."""
    value = (
        await conn.execute(
            sa.select(sa.func.min(_message.c.send_at_ms)).where(
                _message.c.status_rank < SENT_RANK, _message.c.send_at_ms <= now_ms
            )
        )
    ).scalar()
    return int(value) if value is not None else None


async def mark_queued(conn: AsyncConnection, message_ids: list[str], now_ms: int) -> None:
    """Append "queued" for those of ``message_ids`` still only accepted (handed to the queue or dispatcher)."""
    if not message_ids:
        return
    moved = (
        await conn.execute(
            sa.update(_message)
            .where(_message.c.id.in_(message_ids), _message.c.status_rank == 0)
            .values(status="queued", status_rank=RANKS["queued"], updated_at_ms=now_ms)
            .returning(_message.c.id)
        )
    ).all()
    if moved:
        await conn.execute(
            sa.insert(_status),
            [{"message_id": row[0], "status": "queued", "at_ms": now_ms, "source": "queue"} for row in moved],
        )


async def redrive(conn: AsyncConnection, now_ms: int, idle_ms: int) -> int:
    """Give an outbox row back to every unfinished message that has none and has not moved for ``idle_ms``
    (its lease, if any, expired): a message a broker lost, or whose holder died, is sent after all."""
    stale = sa.select(_message.c.id, sa.literal(now_ms), sa.literal(0), sa.literal(now_ms)).where(
        _message.c.status_rank < SENT_RANK,
        _message.c.wamid.is_(None),
        _message.c.updated_at_ms < now_ms - idle_ms,
        _message.c.send_at_ms < now_ms - idle_ms,
        sa.or_(_message.c.lease_until_ms.is_(None), _message.c.lease_until_ms < now_ms),
        ~sa.exists().where(_outbox.c.message_id == _message.c.id),
    )
    result = await conn.execute(
        sa.insert(_outbox).from_select(["message_id", "available_at_ms", "claimed_until_ms", "created_at_ms"], stale)
    )
    return max(result.rowcount, 0)
