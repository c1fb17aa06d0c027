"""Webhooks from WhatsApp: the verification handshake, and events verified, de-duplicated and applied.

* ``GET /webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=…&hub.challenge=…``: the challenge when the
  token matches (compared in constant time), else 403.
* ``POST /webhooks/whatsapp``: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret, raw body)>`` is
  checked on the raw bytes, in constant time, before anything is parsed; a bad or missing one is 401 and
  nothing is stored. The events are then applied in one transaction, committed before the 200 (Meta
  retries anything else), each de-duplicated by its id (a status: its wamid and status; an inbound message:
  its wamid), so Meta's repeats and a retried batch change nothing twice.

What an event does: a status appends to the message's history (the current status only moves forward; a
status for a wamid not stored yet waits in ``messaging_early_status``); a failure with a quality code
(131048, 131049) suppresses the contact; an inbound message is stored (it opens the 24-hour window) and an
opt-out keyword (STOP, …) opts the phone out, an opt-in keyword (START) back in.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec
import sqlalchemy as sa

from bastion.core import metrics
from bastion.core.errors import BadRequest
from bastion.core.errors import WebhookSignatureInvalid as BadSignature
from bastion.core.observability import propagation
from bastion.messaging import ledger, traces
from bastion.messaging.errors import VerifyTokenMismatch
from bastion.messaging.models import ContactRow, EarlyStatusRow, InboundRow, MessageRow, WebhookEventRow
from bastion.messaging.whatsapp import QUALITY

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from bastion.core.db import Database
    from bastion.messaging.settings import MessagingSettings

_events = metrics.counter("messaging_webhook_events_total", "Webhook events by kind and outcome", ("kind", "outcome"))
OPT_IN = frozenset({"START", "UNSTOP", "SUBSCRIBE"})


class _Error(msgspec.Struct):
    code: int | None = None
    title: str = ""
    message: str = ""


class _Status(msgspec.Struct):
    id: str
    status: str
    timestamp: str
    recipient_id: str = ""
    errors: list[_Error] = []


class _Text(msgspec.Struct):
    body: str = ""


class _Inbound(msgspec.Struct):
    id: str
    timestamp: str
    type: str = "text"
    text: _Text | None = None
    from_: str = msgspec.field(name="from", default="")


class _Value(msgspec.Struct):
    statuses: list[_Status] = []
    messages: list[_Inbound] = []


class _Change(msgspec.Struct):
    value: _Value
    field: str = "messages"


class _Entry(msgspec.Struct):
    changes: list[_Change] = []


class _Payload(msgspec.Struct):
    object: str = ""
    entry: list[_Entry] = []


_decode = msgspec.json.Decoder(_Payload).decode


class Webhooks:
    def __init__(self, db: Database, settings: MessagingSettings, *, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock
        self._secret = settings.whatsapp.app_secret.get_secret_value().encode()
        self._opt_out = frozenset(k.upper() for k in settings.opt_out_keywords)

    def handshake(self, mode: str | None, token: str | None, challenge: str | None) -> str:
        expected = self.settings.whatsapp.verify_token.get_secret_value().encode()
        given = (token or "").encode()
        if mode != "subscribe" or not expected or not challenge or not hmac.compare_digest(given, expected):
            raise VerifyTokenMismatch("The verify token does not match.")
        return challenge

    def verify(self, body: bytes, header: str | None) -> None:
        if not self._secret or not header or not header.startswith("sha256="):
            raise BadSignature("X-Hub-Signature-256 is missing or malformed.")
        expected = hmac.new(self._secret, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(header.removeprefix("sha256=").encode(), expected.encode()):
            raise BadSignature("X-Hub-Signature-256 does not match the body.")

    async def receive(self, body: bytes, signature: str | None) -> int:
        """Verify, then apply every new event in one transaction; how many were new."""
        self.verify(body, signature)
        try:
            payload = _decode(body)
        except msgspec.DecodeError:
            raise BadRequest("The webhook body is not a WhatsApp notification.") from None
        applied = 0
        async with self.db.begin() as conn:
            for entry in payload.entry:
                for change in entry.changes:
                    for status in change.value.statuses:
                        applied += await self._status(conn, status)
                    for message in change.value.messages:
                        applied += await self._inbound(conn, message)
        return applied

    async def _first_time(self, conn: AsyncConnection, event_id: str) -> bool:
        table = WebhookEventRow.__table__
        insert: Any
        if conn.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        statement = insert(table).values(event_id=event_id[:200], received_at_ms=int(self.clock() * 1000))
        result = await conn.execute(statement.on_conflict_do_nothing())
        return bool(result.rowcount)

    async def _status(self, conn: AsyncConnection, event: _Status) -> int:
        if event.status not in ledger.RANKS or not await self._first_time(conn, f"s:{event.id}:{event.status}"):
            _events.labels("status", "duplicate").inc()
            return 0
        at_ms = int(event.timestamp) * 1000 if event.timestamp.isdigit() else int(self.clock() * 1000)
        error = event.errors[0] if event.errors else None
        code = error.code if error else None
        reason = (error.message or error.title)[:500] if error else None
        found = (
            await conn.execute(sa.select(MessageRow.id, MessageRow.trace).where(MessageRow.wamid == event.id))
        ).first()
        if found is None:
            await conn.execute(
                sa.insert(EarlyStatusRow).values(
                    wamid=event.id, status=event.status, at_ms=at_ms, code=code, reason=reason
                )
            )
        else:
            # this request's span, linked to the trace of the request that accepted the message
            attributes = {"whatsapp.status": event.status}
            with propagation.linked(traces.carrier_of(found[1]), "whatsapp.status", attributes=attributes):
                await ledger.append_status(
                    conn, found[0], event.status, at_ms, source="webhook", code=code, reason=reason
                )
        if code in QUALITY and event.recipient_id:
            await ledger.suppress_phone(conn, "+" + event.recipient_id, code)
        _events.labels("status", "applied").inc()
        return 1

    async def _inbound(self, conn: AsyncConnection, event: _Inbound) -> int:
        if not event.from_ or not await self._first_time(conn, f"m:{event.id}"):
            _events.labels("inbound", "duplicate").inc()
            return 0
        phone = "+" + event.from_.lstrip("+")
        at_ms = int(event.timestamp) * 1000 if event.timestamp.isdigit() else int(self.clock() * 1000)
        text = event.text.body if event.text else None
        await conn.execute(
            sa.insert(InboundRow).values(wamid=event.id, from_phone=phone, kind=event.type[:32], text=text, at_ms=at_ms)
        )
        keyword = (text or "").strip().upper()
        if keyword in self._opt_out:
            await self._set_opt_out(conn, phone, at_ms)
        elif keyword in OPT_IN:
            await conn.execute(sa.update(ContactRow).where(ContactRow.phone == phone).values(opted_out_at_ms=None))
        _events.labels("inbound", "applied").inc()
        return 1

    async def _set_opt_out(self, conn: AsyncConnection, phone: str, at_ms: int) -> None:
        """Every contact with this phone is opted out; with none yet, one is kept (owner "") so that the
        refusal holds for whoever adds the number later."""
        moved = await conn.execute(sa.update(ContactRow).where(ContactRow.phone == phone).values(opted_out_at_ms=at_ms))
        if not moved.rowcount:
            await conn.execute(
                sa.insert(ContactRow).values(
                    id=hashlib.sha256(phone.encode()).hexdigest()[:16],
                    owner_id="",
                    phone=phone,
                    opted_out_at_ms=at_ms,
                    consent_source="opted out by keyword",
                    created_at_ms=at_ms,
                )
            )
