"""The embedded default (no ``BASTION_AMQP_URL``): the outbox drained in-process, with the same attempts,
limits, retries and states as the RabbitMQ consumers.

Due outbox rows are claimed for a while (a dispatcher that dies frees them when the claim runs out, so a
restart loses nothing), delivered with bounded concurrency, then deleted (done, or dead) or postponed (a
retry: ``available_at`` moves to when it is due). An accept wakes the loop at once; otherwise it looks every
``poll_seconds`` (for scheduled messages and retries coming due).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from bastion.core.logging import get_logger
from bastion.messaging import ledger

if TYPE_CHECKING:
    from bastion.core.db import Database
    from bastion.messaging.delivery import Delivery, Outcome
    from bastion.messaging.settings import MessagingSettings

log = get_logger("bastion.messaging")


class Dispatcher:
    def __init__(
        self,
        db: Database,
        delivery: Delivery,
        settings: MessagingSettings,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.delivery = delivery
        self.settings = settings
        self.clock = clock
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._slots = asyncio.Semaphore(settings.dispatcher_concurrency)
        self.hold_ms = int((settings.lease_seconds + settings.whatsapp.timeout_seconds) * 1000)

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        self._stopping = False
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="messaging-dispatcher")

    async def close(self) -> None:
        """Stop claiming; the deliveries in flight finish (each one records its outcome)."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while not self._stopping:
            try:
                handled = await self.drain_once()
            except Exception as exc:  # the database is down, say: log, wait, try again; nothing is lost
                log.warning("messaging.dispatcher_error", error=f"{type(exc).__name__}: {exc}"[:300])
                handled = 0
            if handled == 0 and not self._stopping:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.settings.poll_seconds)
                self._wake.clear()

    async def drain_once(self) -> int:
        """Claim the due rows and deliver them; how many were handled."""
        now = int(self.clock() * 1000)
        async with self.db.begin() as conn:
            rows = await ledger.claim_due(conn, now, self.settings.dispatcher_batch, self.hold_ms)
            await ledger.mark_queued(conn, [message_id for _, message_id in rows], now)
        if rows:
            outcomes = await asyncio.gather(*(self._one(message_id) for _, message_id in rows))
            finished = [
                row[0]
                for row, outcome in zip(rows, outcomes, strict=True)
                if outcome is not None and outcome.kind != "retry"
            ]
            later = [
                (row[0], outcome.delay)
                for row, outcome in zip(rows, outcomes, strict=True)
                if outcome is not None and outcome.kind == "retry"
            ]
            # one transaction for the whole batch (on SQLite every write transaction waits for the one writer)
            async with self.db.begin() as conn:
                await ledger.delete_outbox(conn, finished)
                for outbox_id, delay in later:
                    await ledger.postpone(conn, outbox_id, int((self.clock() + delay) * 1000))
        return len(rows)

    async def _one(self, message_id: str) -> Outcome | None:
        """The delivery's outcome; None when it failed (the claim runs out and the row is tried again)."""
        async with self._slots:
            try:
                return await self.delivery.deliver(message_id)
            except Exception as exc:
                log.warning("messaging.delivery_error", message_id=message_id, error=type(exc).__name__)
                return None
