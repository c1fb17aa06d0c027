"""The embedded default (no ``BASTION_AMQP_URL``): the outbox drained in-process, with the same attempts,
limits, retries and states as the RabbitMQ consumers.

Due outbox rows are claimed for a while (a dispatcher that dies frees them when the claim runs out, so a
restart loses nothing) whenever a delivery slot is free, so one slow call holds one slot, never the others.
Finished rows are deleted, and retried ones postponed (``available_at`` moves to when they are due), in one
transaction per turn of the loop: on SQLite every write transaction waits for the one writer. A row whose
outcome was not written yet when the process died is claimed again later and finds its message sent (the
wamid), so nothing is sent twice. An accept wakes the loop at once; otherwise it looks every
``poll_seconds`` (for scheduled messages and retries coming due).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bastion.core.logging import get_logger
from bastion.core.observability import propagation
from bastion.messaging import ledger, traces

if TYPE_CHECKING:
    from bastion.core.db import Database
    from bastion.messaging.delivery import Delivery
    from bastion.messaging.settings import MessagingSettings

log = get_logger("bastion.messaging")
_SPAN_ATTRIBUTES = {"messaging.system": "bastion-outbox"}


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
        self._in_flight: set[asyncio.Task[None]] = set()
        self._finished: list[int] = []
        self._later: list[tuple[int, float]] = []
        self.hold_ms = int((settings.lease_seconds + settings.whatsapp.timeout_seconds) * 1000)

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        self._stopping = False
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="messaging-dispatcher")

    async def close(self) -> None:
        """Stop claiming; the deliveries in flight finish and their outcomes are written."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self._record()
                claimed = await self._claim()
            except Exception as exc:  # the database is down, say: log, wait, try again; nothing is lost
                log.warning("messaging.dispatcher_error", error=f"{type(exc).__name__}: {exc}"[:300])
                claimed = 0
            if claimed == 0 and not self._stopping:
                await self._idle()
        if self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self._record()

    async def _idle(self) -> None:
        """Until an accept wakes us, a delivery finishes, or the poll interval passes."""
        woken = asyncio.ensure_future(self._wake.wait())
        waits: set[asyncio.Future[Any]] = {woken, *self._in_flight}
        await asyncio.wait(waits, timeout=self.settings.poll_seconds, return_when=asyncio.FIRST_COMPLETED)
        woken.cancel()
        self._wake.clear()

    async def _claim(self) -> int:
        free = self.settings.dispatcher_concurrency - len(self._in_flight)
        if free <= 0:
            return 0
        now = int(self.clock() * 1000)
        async with self.db.begin() as conn:
            rows = await ledger.claim_due(conn, now, min(free, self.settings.dispatcher_batch), self.hold_ms)
            await ledger.mark_queued(conn, [message_id for _, message_id in rows], now)
            carriers = await traces.of_messages(conn, [message_id for _, message_id in rows])
        for outbox_id, message_id in rows:
            task = asyncio.create_task(self._one(outbox_id, message_id, carriers.get(message_id)))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)
        return len(rows)

    async def _record(self) -> None:
        """Write the outcomes gathered since the last turn, in one transaction."""
        if not self._finished and not self._later:
            return
        finished, later = self._finished, self._later
        self._finished, self._later = [], []
        try:
            async with self.db.begin() as conn:
                await ledger.delete_outbox(conn, finished)
                for outbox_id, delay in later:
                    await ledger.postpone(conn, outbox_id, int((self.clock() + delay) * 1000))
        except BaseException:
            self._finished, self._later = finished + self._finished, later + self._later
            raise

    async def drain_once(self) -> int:
        """Claim what is due, deliver it and write the outcomes; how many rows (for tests and tools)."""
        claimed = await self._claim()
        if self._in_flight:
            await asyncio.gather(*self._in_flight, return_exceptions=True)
        await self._record()
        return claimed

    async def _one(self, outbox_id: int, message_id: str, carrier: dict[str, str] | None = None) -> None:
        try:
            # continues the accepting request's trace (the WhatsApp call is a child of this span)
            with propagation.continued(carrier, "messaging.process", kind="consumer", attributes=_SPAN_ATTRIBUTES):
                outcome = await self.delivery.deliver(message_id)
        except Exception as exc:
            log.warning("messaging.delivery_error", message_id=message_id, error=type(exc).__name__)
            return  # the claim runs out and the row is tried again
        if outcome.kind == "retry":
            self._later.append((outbox_id, outcome.delay))
        else:
            self._finished.append(outbox_id)
