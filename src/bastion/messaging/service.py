"""Accepting messages, reading their status, contacts and templates: plain async Python, no HTTP.

Other modules send through :class:`Messaging` (what this module ``provides``), inside their own transaction::

    messaging = ctx.require(Messaging)                     # in the other module's build
    async with platform.db.begin() as conn:                # the caller's transaction
        await conn.execute(insert(visit)...)
        ids = await messaging.enqueue(conn, owner_id, SendMessage(to="+15551234567", template=...))
    # committed together: the message, its history and its outbox row exist exactly when the visit does

A message is accepted only once its row, its first status and its outbox row are committed together.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import sqlalchemy as sa
import sqlalchemy.exc as sa_exc

from bastion.core.errors import validation_errors
from bastion.messaging import ledger, traces
from bastion.messaging.errors import (
    ContactOptedOut,
    ContactSuppressed,
    InvalidMessage,
    MessageNotFound,
    OutsideWindow,
    TemplateParamsMismatch,
    UnknownTemplate,
)
from bastion.messaging.models import ContactRow, InboundRow, MessageRow, OutboxRow, StatusRow, TemplateRow
from bastion.messaging.schemas import (
    Accepted,
    BatchAccepted,
    MessagePage,
    MessageSummary,
    MessageView,
    SendBatch,
    SendMessage,
    StatusEntry,
    TemplateRef,
)

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from bastion.core.db import Database
    from bastion.messaging.settings import MessagingSettings

E164 = re.compile(r"^\+[1-9][0-9]{7,14}$")
MAX_TEXT = 4096


def new_id(now_ms: int) -> str:
    """Time-ordered (12 hex digits of milliseconds, then 10 random ones): ids sort as they were accepted."""
    return f"{now_ms:012x}{secrets.token_hex(5)}"


def to_datetime(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC)


def check_phone(phone: str, field: str = "to") -> None:
    if not E164.match(phone):
        raise InvalidMessage(
            "Phone numbers are E.164: '+' then the country code and number, 8 to 15 digits.",
            extra=validation_errors([{"field": field, "message": "not an E.164 phone number"}]),
        )


class Messaging:
    """The messaging service; :meth:`enqueue` is the way other modules send."""

    def __init__(
        self,
        db: Database,
        settings: MessagingSettings,
        *,
        clock: Callable[[], float] = time.time,
        on_accept: Callable[[], None] | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.clock = clock
        self.on_accept = on_accept
        """Called after a commit that accepted messages (the embedded dispatcher wakes on it)."""

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    # -- accepting ------------------------------------------------------------------------------------------

    async def accept(self, owner_id: str, request: SendMessage, idempotency_key: str | None = None) -> Accepted:
        """Validate and accept one message (committed before this returns)."""
        key = f"one:{idempotency_key}" if idempotency_key else None
        try:
            async with self.db.begin() as conn:
                ids = await self.enqueue(conn, owner_id, request, idempotency_key=key)
        except sa_exc.IntegrityError:
            if key is None:
                raise
            return await self._replayed(owner_id, key)
        self._accepted()
        return Accepted(id=ids[0], status="accepted")

    async def accept_batch(self, owner_id: str, batch: SendBatch, idempotency_key: str | None = None) -> BatchAccepted:
        """One template to up to ``max_batch`` recipients, all accepted in one transaction or none."""
        if len(batch.recipients) > self.settings.max_batch:
            raise InvalidMessage(
                f"A batch has at most {self.settings.max_batch} recipients.",
                extra=validation_errors([{"field": "recipients", "message": f"more than {self.settings.max_batch}"}]),
            )
        ids: list[str] = []
        try:
            async with self.db.begin() as conn:
                for index, recipient in enumerate(batch.recipients):
                    template = TemplateRef(batch.template.name, batch.template.language, recipient.params)
                    one = SendMessage(to=recipient.to, template=template, send_at=batch.send_at)
                    key = f"batch:{idempotency_key}:{index}" if idempotency_key else None
                    ids.extend(
                        await self.enqueue(conn, owner_id, one, idempotency_key=key, field=f"recipients[{index}]")
                    )
        except sa_exc.IntegrityError:
            if idempotency_key is None:
                raise
            async with self.db.engine.connect() as conn:
                found = (
                    await conn.execute(
                        sa.select(MessageRow.id, MessageRow.idempotency_key).where(
                            MessageRow.owner_id == owner_id,
                            MessageRow.idempotency_key.like(f"batch:{idempotency_key}:%"),
                        )
                    )
                ).all()
            ordered = sorted(found, key=lambda r: int(str(r[1]).rsplit(":", 1)[1]))
            return BatchAccepted(ids=[r[0] for r in ordered])
        self._accepted()
        return BatchAccepted(ids=ids)

    async def enqueue(
        self,
        conn: AsyncConnection,
        owner_id: str,
        request: SendMessage,
        *,
        idempotency_key: str | None = None,
        field: str = "to",
    ) -> list[str]:
        """Validate ``request`` and write the message, its "accepted" status and its outbox row on ``conn``,
        in the caller's transaction (nothing is sent unless it commits). Raises the validation errors."""
        now = self._now_ms()
        check_phone(request.to, field)
        phone = request.to
        if (request.text is None) == (request.template is None):
            raise InvalidMessage(
                "Send either text or a template.",
                extra=validation_errors([{"field": field, "message": "text or template, not both"}]),
            )
        await self._check_contact(conn, phone)
        params: list[str] = []
        if request.text is not None:
            if not request.text.strip() or len(request.text) > MAX_TEXT:
                raise InvalidMessage(
                    f"Text is 1 to {MAX_TEXT} characters.",
                    extra=validation_errors([{"field": "text", "message": "empty or too long"}]),
                )
            await self._check_window(conn, phone, now)
        else:
            assert request.template is not None
            params = request.template.params
            await self._check_template(conn, owner_id, request.template)
        send_at = now
        if request.send_at is not None:
            when = request.send_at if request.send_at.tzinfo else request.send_at.replace(tzinfo=dt.UTC)
            send_at = max(now, int(when.timestamp() * 1000))
        message_id = new_id(now)
        template = request.template
        await conn.execute(
            sa.insert(MessageRow).values(
                id=message_id,
                owner_id=owner_id,
                to_phone=phone,
                kind="text" if request.text is not None else "template",
                text=request.text,
                template_name=template.name if template else None,
                template_language=template.language if template else None,
                params=json.dumps(params) if template else None,
                status="accepted",
                status_rank=0,
                attempts=0,
                send_at_ms=send_at,
                created_at_ms=now,
                updated_at_ms=now,
                idempotency_key=idempotency_key,
                trace=traces.current(),
            )
        )
        await conn.execute(
            sa.insert(StatusRow).values(message_id=message_id, status="accepted", at_ms=now, source="api")
        )
        await conn.execute(
            sa.insert(OutboxRow).values(
                message_id=message_id, available_at_ms=send_at, claimed_until_ms=0, created_at_ms=now
            )
        )
        return [message_id]

    def notify(self) -> None:
        """Tell the embedded dispatcher that messages were committed (else it finds them within ``poll_seconds``);
        a caller of :meth:`enqueue` calls it after its own commit."""
        if self.on_accept is not None:
            self.on_accept()

    _accepted = notify

    async def _replayed(self, owner_id: str, key: str) -> Accepted:
        async with self.db.engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(MessageRow.id, MessageRow.status).where(
                        MessageRow.owner_id == owner_id, MessageRow.idempotency_key == key
                    )
                )
            ).first()
        if row is None:
            raise MessageNotFound("The message accepted under this key was purged.")
        return Accepted(id=row[0], status="accepted")

    async def _check_contact(self, conn: AsyncConnection, phone: str) -> None:
        row = (
            await conn.execute(
                sa.select(ContactRow.opted_out_at_ms, ContactRow.suppressed_code)
                .where(
                    ContactRow.phone == phone,
                    sa.or_(ContactRow.opted_out_at_ms.is_not(None), ContactRow.suppressed_code.is_not(None)),
                )
                .limit(1)
            )
        ).first()
        if row is None:
            return
        if row[0] is not None:
            raise ContactOptedOut("This contact opted out of messages; nothing was sent.")
        raise ContactSuppressed(
            "WhatsApp flagged sends to this contact (quality); nothing was sent.", extra={"meta_code": row[1]}
        )

    async def _check_window(self, conn: AsyncConnection, phone: str, now: int) -> None:
        if not self.settings.enforce_window:
            return
        last = await last_inbound_ms(conn, phone)
        if last is None or now - last > self.settings.window_hours * 3_600_000:
            raise OutsideWindow(
                "Free-form text can only be sent within 24 hours of the contact's last message; "
                "send an approved template instead.",
                extra={"hint": "use a template"},
            )

    async def _check_template(self, conn: AsyncConnection, owner_id: str, ref: TemplateRef) -> None:
        count = (
            await conn.execute(
                sa.select(TemplateRow.param_count).where(
                    TemplateRow.owner_id == owner_id, TemplateRow.name == ref.name, TemplateRow.language == ref.language
                )
            )
        ).scalar()
        if count is None:
            raise UnknownTemplate(f"No template {ref.name!r} ({ref.language}) is registered.")
        if count != len(ref.params):
            raise TemplateParamsMismatch(
                f"Template {ref.name!r} takes {count} parameter(s), {len(ref.params)} given.",
                extra={"expected": count, "given": len(ref.params)},
            )

    # -- reading ----------------------------------------------------------------------------------------------

    async def get(self, message_id: str, owner_id: str | None) -> MessageView:
        """One message with its timeline; ``owner_id`` None reads anyone's (an admin)."""
        async with self.db.engine.connect() as conn:
            query = sa.select(MessageRow).where(MessageRow.id == message_id)
            if owner_id is not None:
                query = query.where(MessageRow.owner_id == owner_id)
            row = (await conn.execute(query)).first()
            if row is None:
                raise MessageNotFound(f"No message {message_id!r}.")
            history = (
                await conn.execute(
                    sa.select(StatusRow.status, StatusRow.at_ms, StatusRow.code, StatusRow.reason)
                    .where(StatusRow.message_id == message_id)
                    .order_by(StatusRow.id)
                )
            ).all()
        # the timeline in the order of the statuses (a webhook may arrive late), each status once
        seen: dict[str, StatusEntry] = {}
        for status, at_ms, code, reason in history:
            if status not in seen:
                seen[status] = StatusEntry(status, to_datetime(at_ms), code, reason)
        timeline = sorted(seen.values(), key=lambda e: ledger.RANKS[e.status])
        return MessageView(
            id=row.id,
            to=row.to_phone,
            kind=row.kind,
            status=row.status,
            attempts=row.attempts,
            created_at=to_datetime(row.created_at_ms),
            send_at=to_datetime(row.send_at_ms),
            wamid=row.wamid,
            error_code=row.error_code,
            error_reason=row.error_reason,
            timeline=timeline,
        )

    async def page(
        self,
        owner_id: str | None,
        *,
        cursor: str | None = None,
        limit: int = 50,
        status: str | None = None,
        to: str | None = None,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
    ) -> MessagePage:
        """Newest first; ``cursor`` is the last id of the previous page."""
        query = sa.select(
            MessageRow.id,
            MessageRow.to_phone,
            MessageRow.kind,
            MessageRow.status,
            MessageRow.attempts,
            MessageRow.created_at_ms,
        )
        if owner_id is not None:
            query = query.where(MessageRow.owner_id == owner_id)
        if cursor:
            query = query.where(MessageRow.id < cursor)
        if status:
            query = query.where(MessageRow.status == status)
        if to:
            query = query.where(MessageRow.to_phone == to)
        if since:
            query = query.where(MessageRow.created_at_ms >= int(since.timestamp() * 1000))
        if until:
            query = query.where(MessageRow.created_at_ms < int(until.timestamp() * 1000))
        async with self.db.engine.connect() as conn:
            rows = (await conn.execute(query.order_by(MessageRow.id.desc()).limit(limit + 1))).all()
        items = [MessageSummary(r[0], r[1], r[2], r[3], r[4], to_datetime(r[5])) for r in rows[:limit]]
        return MessagePage(items=items, next_cursor=items[-1].id if len(rows) > limit else None)


async def last_inbound_ms(conn: AsyncConnection, phone: str) -> int | None:
    value = (
        await conn.execute(sa.select(sa.func.max(InboundRow.at_ms)).where(InboundRow.from_phone == phone))
    ).scalar()
    return int(value) if value is not None else None
