"""One delivery attempt of one message, the same whoever drives it (the embedded dispatcher or a RabbitMQ
consumer): look, wait for the limits, take the lease, call the API, store the answer, say what comes next.

    outcome = await delivery.deliver(message_id)
    outcome.kind    # "done" (sent now or before, or failed for good) | "retry" (after outcome.delay) | "dead"

The one window that remains (docs/messaging.md, "Nothing sent twice"): the process dies, or the database is
unreachable, after Meta accepted the message and before its wamid is committed. The lease then expires and
the message is sent once more. Everything else (a redelivery, a second worker, a crash before the call or
after the commit) finds either the lease or the wamid and sends nothing.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import sqlalchemy as sa

from bastion.core import metrics
from bastion.core.logging import get_logger
from bastion.messaging import ledger
from bastion.messaging.models import MessageRow
from bastion.messaging.whatsapp import MetaError, payload_of

if TYPE_CHECKING:
    from bastion.core.db import Database
    from bastion.messaging.limits import Limits
    from bastion.messaging.settings import MessagingSettings
    from bastion.messaging.whatsapp import WhatsAppClient

log = get_logger("bastion.messaging")
_attempts = metrics.counter("messaging_send_attempts_total", "Send attempts by outcome", ("outcome",))
_latency = metrics.histogram("messaging_send_seconds", "Duration of one call to the WhatsApp API")
_retries = metrics.counter("messaging_retries_total", "Sends postponed, by reason", ("reason",))
_dead = metrics.counter("messaging_dead_letters_total", "Messages that ran out of attempts")


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: Literal["done", "retry", "dead"]
    delay: float = 0.0


DONE = Outcome("done")


def mask(phone: str) -> str:
    """A phone number fit for a log line: the country code's first digit and the last two digits."""
    return phone[:2] + "…" + phone[-2:] if len(phone) > 5 else "…"


class Delivery:
    def __init__(
        self,
        db: Database,
        client: WhatsAppClient,
        limits: Limits,
        settings: MessagingSettings,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.client = client
        self.limits = limits
        self.settings = settings
        self.clock = clock

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def backoff(self, attempts: int) -> float:
        delays = self.settings.retry_delays_seconds or (1.0,)
        base = delays[min(max(attempts, 1), len(delays)) - 1]
        return base * random.uniform(1.0, 1.2)

    async def deliver(self, message_id: str) -> Outcome:
        now = self._now_ms()
        row = await self._peek(message_id)
        if row is None or row.wamid is not None or row.status_rank >= ledger.SENT_RANK:
            return DONE  # unknown (purged), or already sent or failed: a redelivery, nothing to do
        if row.lease_until_ms is not None and row.lease_until_ms >= now:
            return Outcome("retry", (row.lease_until_ms - now) / 1000 + 0.05)  # another attempt holds it
        wait = await self.limits.acquire(row.to_phone)
        if wait > 0:
            _retries.labels("limit").inc()
            return Outcome("retry", wait)
        async with self.db.begin() as conn:
            claimed = await ledger.claim(conn, message_id, now, int(self.settings.lease_seconds * 1000))
        if claimed is None:  # another worker claimed it since we looked
            await self.limits.release(row.to_phone)
            return await self._after_lost_race(message_id)
        try:
            return await self._attempt(claimed)
        finally:
            await self.limits.done(claimed.to_phone)

    async def _peek(self, message_id: str) -> sa.Row[int, str | None, str, int | None] | None:
        async with self.db.engine.connect() as conn:
            query = sa.select(
                MessageRow.status_rank, MessageRow.wamid, MessageRow.to_phone, MessageRow.lease_until_ms
            ).where(MessageRow.id == message_id)
            return (await conn.execute(query)).first()

    async def _after_lost_race(self, message_id: str) -> Outcome:
        row = await self._peek(message_id)
        if row is None or row.wamid is not None or row.status_rank >= ledger.SENT_RANK:
            return DONE
        until = row.lease_until_ms or self._now_ms()
        return Outcome("retry", max(0.05, (until - self._now_ms()) / 1000 + 0.05))

    async def _attempt(self, claimed: ledger.Claimed) -> Outcome:
        params: list[str] = json.loads(claimed.params) if claimed.params else []
        payload = payload_of(
            claimed.to_phone, claimed.kind, claimed.text, claimed.template_name, claimed.template_language, params
        )
        started = time.perf_counter()
        code: int | None = None
        try:
            wamid = await self.client.send(payload)
        except MetaError as exc:
            kind, code, reason = exc.kind, exc.code, exc.reason
        except Exception as exc:  # transport errors, timeouts, circuit open, bulkhead full: not taken, or unknown
            kind, reason = "transient", f"{type(exc).__name__}: {exc}"[:500]
        else:
            _latency.observe(time.perf_counter() - started)
            async with self.db.begin() as conn:
                await ledger.record_sent(conn, claimed.id, wamid, self._now_ms())
            self._log(claimed, "sent", started, wamid=wamid)
            return DONE
        _latency.observe(time.perf_counter() - started)
        now = self._now_ms()
        if kind in ("throttled", "transient"):
            if claimed.attempts >= self.settings.max_attempts:
                async with self.db.begin() as conn:
                    await ledger.fail(conn, claimed.id, now, code, f"{claimed.attempts} attempts; last: {reason}")
                _dead.inc()
                self._log(claimed, "dead", started, code=code)
                return Outcome("dead")
            async with self.db.begin() as conn:
                await ledger.release(conn, claimed, now, code, reason)
            _retries.labels(kind).inc()
            self._log(claimed, kind, started, code=code)
            return Outcome("retry", self.backoff(claimed.attempts))
        async with self.db.begin() as conn:
            await ledger.fail(conn, claimed.id, now, code, reason)
            if kind == "quality" and code is not None:
                await ledger.suppress_phone(conn, claimed.to_phone, code)
        self._log(claimed, kind, started, code=code)
        return DONE

    def _log(self, claimed: ledger.Claimed, outcome: str, started: float, **extra: object) -> None:
        _attempts.labels(outcome).inc()
        log.info(
            "messaging.attempt",
            message_id=claimed.id,
            attempt=claimed.attempts,
            outcome=outcome,
            to=mask(claimed.to_phone),
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
            **extra,
        )
