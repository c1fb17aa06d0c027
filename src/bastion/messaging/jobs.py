"""The messaging jobs, declared in the descriptor and run by core's job loop (once across the cluster).

* ``messaging.redrive``: an unfinished message with no outbox row that has not moved for a while (a broker
  lost it, or its holder died and its lease expired) gets an outbox row again. Scheduled messages need no
  job: their outbox row becomes due at ``send_at``.
* ``messaging.purge``: finished messages (and seen webhook ids) older than ``retention_days`` go.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import sqlalchemy as sa

from bastion.messaging import ledger
from bastion.messaging.models import InboundRow, MessageRow, WebhookEventRow

if TYPE_CHECKING:
    from bastion.core.db import Database
    from bastion.messaging.settings import MessagingSettings


class MessagingJobs:
    def __init__(self, db: Database, settings: MessagingSettings, *, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock

    @property
    def idle_ms(self) -> int:
        """Longer than any legitimate wait (the longest retry delay with its jitter, a lease, a margin)."""
        longest = max(self.settings.retry_delays_seconds or (0.0,))
        return int((longest * 1.2 + self.settings.lease_seconds + 60) * 1000)

    async def redrive(self) -> int:
        async with self.db.begin() as conn:
            return await ledger.redrive(conn, int(self.clock() * 1000), self.idle_ms)

    async def purge(self) -> int:
        cutoff = int((self.clock() - self.settings.retention_days * 86_400) * 1000)
        async with self.db.begin() as conn:
            gone = await conn.execute(
                sa.delete(MessageRow).where(
                    MessageRow.created_at_ms < cutoff, MessageRow.status_rank >= ledger.SENT_RANK
                )
            )
            await conn.execute(sa.delete(WebhookEventRow).where(WebhookEventRow.received_at_ms < cutoff))
            await conn.execute(sa.delete(InboundRow).where(InboundRow.at_ms < cutoff))
        return max(gone.rowcount, 0)
