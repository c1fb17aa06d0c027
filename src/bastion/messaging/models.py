"""SQL tables of the messaging module. Times are epoch milliseconds (exact, compared alike on SQLite and
PostgreSQL).

A message's status is derived from its append-only history (``messaging_status``): the ``status`` column of
``messaging_message`` is the highest-ranked event so far, updated in the transaction that appends the event
and only ever upwards, so a late "delivered" never overwrites a "read" (and a failure reported after "sent"
is kept, with its code)."""

from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bastion.core.db import Base

# BIGINT on PostgreSQL; plain INTEGER on SQLite, where only INTEGER PRIMARY KEY autoincrements.
RowId = BigInteger().with_variant(Integer(), "sqlite")


class ContactRow(Base):
    __tablename__ = "messaging_contact"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(64))
    phone: Mapped[str] = mapped_column(String(16), index=True)
    name: Mapped[str | None] = mapped_column(String(200))
    consent_at_ms: Mapped[int | None] = mapped_column(BigInteger)
    consent_source: Mapped[str | None] = mapped_column(String(200))
    opted_out_at_ms: Mapped[int | None] = mapped_column(BigInteger)
    suppressed_code: Mapped[int | None] = mapped_column(Integer)
    """A Meta quality code (131048, 131049) that suppresses sends to this contact."""
    last_inbound_at_ms: Mapped[int | None] = mapped_column(BigInteger)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (UniqueConstraint("owner_id", "phone", name="uq_messaging_contact_owner_phone"),)


class TemplateRow(Base):
    __tablename__ = "messaging_template"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(512))
    language: Mapped[str] = mapped_column(String(16))
    param_count: Mapped[int] = mapped_column(Integer)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (UniqueConstraint("owner_id", "name", "language", name="uq_messaging_template_key"),)


class MessageRow(Base):
    __tablename__ = "messaging_message"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(64))
    to_phone: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(16))
    text: Mapped[str | None] = mapped_column(Text)
    template_name: Mapped[str | None] = mapped_column(String(512))
    template_language: Mapped[str | None] = mapped_column(String(16))
    params: Mapped[str | None] = mapped_column(Text)
    """The template's parameters, a JSON array of strings."""
    status: Mapped[str] = mapped_column(String(16))
    status_rank: Mapped[int] = mapped_column(Integer)
    wamid: Mapped[str | None] = mapped_column(String(128), unique=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_token: Mapped[str | None] = mapped_column(String(32))
    lease_until_ms: Mapped[int | None] = mapped_column(BigInteger)
    error_code: Mapped[int | None] = mapped_column(Integer)
    error_reason: Mapped[str | None] = mapped_column(String(500))
    send_at_ms: Mapped[int] = mapped_column(BigInteger)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)
    updated_at_ms: Mapped[int] = mapped_column(BigInteger)
    idempotency_key: Mapped[str | None] = mapped_column(String(300))
    """The caller's key for this accept (batch: key and index), unique per owner: a retry after a crash
    between the commit and the idempotency record still finds the message."""
    trace: Mapped[str | None] = mapped_column(String(600))
    """The W3C trace context of the request that accepted it (JSON ``{"traceparent": …}``), when tracing is on:
    the relay, the worker and later status webhooks continue or link that trace. NULL when tracing is off."""

    __table_args__ = (
        UniqueConstraint("owner_id", "idempotency_key", name="uq_messaging_message_idem"),
        Index("ix_messaging_message_owner_created", "owner_id", "created_at_ms", "id"),
        Index("ix_messaging_message_status", "status", "created_at_ms"),
    )


class StatusRow(Base):
    """The append-only history of a message's statuses (and failures, with Meta's code)."""

    __tablename__ = "messaging_status"

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("messaging_message.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(16))
    at_ms: Mapped[int] = mapped_column(BigInteger)
    source: Mapped[str] = mapped_column(String(16))
    code: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(String(500))


class OutboxRow(Base):
    """Work to do for a message: written in the transaction that accepts it, removed once the work is handed
    on (published with a confirm) or done (the embedded dispatcher)."""

    __tablename__ = "messaging_outbox"

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("messaging_message.id", ondelete="CASCADE"), index=True
    )
    available_at_ms: Mapped[int] = mapped_column(BigInteger)
    claimed_until_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at_ms: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_messaging_outbox_due", "available_at_ms", "claimed_until_ms"),)


class WebhookEventRow(Base):
    """Webhook events seen, by their provider id: a duplicate is acknowledged and ignored."""

    __tablename__ = "messaging_webhook_event"

    event_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    received_at_ms: Mapped[int] = mapped_column(BigInteger, index=True)


class InboundRow(Base):
    """A message a contact sent us (opens their 24-hour window)."""

    __tablename__ = "messaging_inbound"

    wamid: Mapped[str] = mapped_column(String(128), primary_key=True)
    from_phone: Mapped[str] = mapped_column(String(16), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    text: Mapped[str | None] = mapped_column(Text)
    at_ms: Mapped[int] = mapped_column(BigInteger)


class EarlyStatusRow(Base):
    """A status webhook for a wamid not stored yet (Meta answered, the commit of the wamid is a moment away):
    kept here and applied when the wamid is stored, so no status is lost to that race."""

    __tablename__ = "messaging_early_status"

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    wamid: Mapped[str] = mapped_column(String(128), index=True)
    status: Mapped[str] = mapped_column(String(16))
    at_ms: Mapped[int] = mapped_column(BigInteger)
    code: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str | None] = mapped_column(String(500))
