"""The SQL backend's purge: small batches by index, each its own short transaction.

The usage row (the bytes counted against the total cap) is kept exact as ciphertexts go, so the purge
never sums the table while holding the row every create needs:

* a ciphertext dropped on its last view or by a burn writes its size to ``secrets_released`` (an insert,
  so reveals never queue on the usage row); the purge deletes that ledger in batches by primary key and
  takes each batch's bytes off the usage row;
* the purge drops expired ciphertexts in batches by the ``expires_at_ms`` index, and takes their bytes off
  in the same transaction; it walks only what expired since its last run (less a margin for late
  clocks), not every expired row still kept for the audit trail;
* secrets past the audit retention are deleted in batches by the same index, their events with them.

Each batch is one transaction whose last statement updates the usage row, so a create waits at most for
that statement and the commit, never for a scan. Every drop of a ciphertext is conditional on it still
being there, so its bytes are taken off exactly once, whoever drops it.
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import BigInteger, Table, bindparam, case, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bastion.core.db import Database
from bastion.secrets.models import SecretEventRow, SecretReleasedRow, SecretRow, SecretUsageRow

BATCH = 500
MARGIN_MS = 600_000
"""How far behind its last run an expiry walk starts again: a secret created on an instance whose clock
is behind expires before the mark; ten minutes of clock skew is far more than NTP allows."""

SECRETS = cast("Table", SecretRow.__table__)
EVENTS = cast("Table", SecretEventRow.__table__)
USAGE = cast("Table", SecretUsageRow.__table__)
RELEASED = cast("Table", SecretReleasedRow.__table__)
_S = SECRETS.c
_NOW, _FROM = bindparam("now", type_=BigInteger), bindparam("from", type_=BigInteger)

EXPIRE = (
    update(SECRETS)
    .where(
        _S.id.in_(
            select(_S.id)
            .where(_S.expires_at_ms >= _FROM, _S.expires_at_ms <= _NOW, _S.ciphertext.is_not(None))
            .order_by(_S.expires_at_ms)
            .limit(BATCH)
            .scalar_subquery()
        ),
        _S.ciphertext.is_not(None),
    )
    .values(ciphertext=None)
    .returning(_S.size_bytes, _S.expires_at_ms)
)
TAKE_RELEASED = (
    delete(RELEASED)
    .where(RELEASED.c.id.in_(select(RELEASED.c.id).order_by(RELEASED.c.id).limit(BATCH).scalar_subquery()))
    .returning(RELEASED.c.size_bytes)
)
PAST_RETENTION = (
    select(_S.id)
    .where(_S.expires_at_ms <= bindparam("cutoff", type_=BigInteger))
    .order_by(_S.expires_at_ms)
    .limit(BATCH)
)
FORGET = (
    delete(SECRETS)
    .where(_S.id.in_(bindparam("ids", expanding=True)))
    .returning(case((_S.ciphertext.is_(None), 0), else_=_S.size_bytes))
)
FORGET_EVENTS = delete(EVENTS).where(EVENTS.c.secret_id.in_(bindparam("ids", expanding=True)))
GIVE_BACK = update(USAGE).where(USAGE.c.id == 1).values(bytes=USAGE.c.bytes - bindparam("freed", type_=BigInteger))


class Purge:
    """One per backend: it remembers how far its expiry walk got."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.expired_upto = 0

    async def __call__(self, now_ms: int, retention_ms: int) -> int:
        dropped = 0
        start = max(0, self.expired_upto - MARGIN_MS)
        while True:  # each batch starts where the last one ended, so the walk passes each row once
            async with self.db.begin() as conn:
                rows = (await conn.execute(EXPIRE, {"from": start, "now": now_ms})).all()
                await self._give_back(conn, sum(row[0] for row in rows))
            dropped += len(rows)
            if len(rows) < BATCH:
                break
            start = max(row[1] for row in rows)
        self.expired_upto = now_ms
        while True:
            async with self.db.begin() as conn:
                sizes = (await conn.scalars(TAKE_RELEASED)).all()
                await self._give_back(conn, sum(sizes))
            if len(sizes) < BATCH:
                break
        cutoff = now_ms - retention_ms
        while True:
            async with self.db.begin() as conn:
                ids = list((await conn.scalars(PAST_RETENTION, {"cutoff": cutoff})).all())
                if not ids:
                    break
                await conn.execute(FORGET_EVENTS, {"ids": ids})
                await self._give_back(conn, sum((await conn.scalars(FORGET, {"ids": ids})).all()))
            if len(ids) < BATCH:
                break
        return dropped

    @staticmethod
    async def _give_back(conn: AsyncConnection, freed: int) -> None:
        """Last in its transaction: the usage row is locked from here to the commit only."""
        if freed:
            await conn.execute(GIVE_BACK, {"freed": freed})
