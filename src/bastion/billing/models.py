"""SQL tables of the billing module. Times are epoch milliseconds (ours) or Stripe's epoch seconds (named
``*_s``), compared the same way on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from bastion.core.db import Base

# BIGINT on PostgreSQL; plain INTEGER on SQLite, where only INTEGER PRIMARY KEY autoincrements.
RowId = BigInteger().with_variant(Integer(), "sqlite")


class BillingAccount(Base):
    """One per account that ever went to checkout: its Stripe customer (created once, reused), the plan billing
    grants it, and the plan identity was last told (``synced_plan``; different means a sync is owed)."""

    __tablename__ = "billing_account"

    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    plan: Mapped[str] = mapped_column(String(16), default="free")
    synced_plan: Mapped[str | None] = mapped_column(String(16))
    checkout_session_id: Mapped[str | None] = mapped_column(String(255))
    """The checkout the account last started; cleared when Stripe says it completed."""
    checkout_expires_ms: Mapped[int | None] = mapped_column(BigInteger)
    had_subscription: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at_ms: Mapped[int] = mapped_column(BigInteger)


class BillingSubscription(Base):
    """A Stripe subscription as the newest event about it described it. ``version_s`` and ``version_rank`` are
    the ``created`` of that event and the rank of its status: an older description never replaces a newer one.
    ``past_due_since_ms`` starts the grace period (a failed invoice); a newer paid invoice clears it."""

    __tablename__ = "billing_subscription"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64), index=True)
    customer_id: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(32))
    price_id: Mapped[str | None] = mapped_column(String(255))
    item_id: Mapped[str | None] = mapped_column(String(255))
    current_period_end_s: Mapped[int | None] = mapped_column(BigInteger)
    cancel_at_period_end: Mapped[bool] = mapped_column(Boolean, default=False)
    trial_end_s: Mapped[int | None] = mapped_column(BigInteger)
    version_s: Mapped[int] = mapped_column(BigInteger)
    version_rank: Mapped[int] = mapped_column(Integer)
    invoice_version_s: Mapped[int | None] = mapped_column(BigInteger)
    """``created`` of the newest invoice event applied (paid or failed): an older one is ignored."""
    past_due_since_ms: Mapped[int | None] = mapped_column(BigInteger)


class BillingEvent(Base):
    """A Stripe event applied: inserted in the same transaction as its effect, so it exists if and only if the
    effect does. A second delivery finds it and does nothing."""

    __tablename__ = "billing_event"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(64))
    created_s: Mapped[int] = mapped_column(BigInteger)
    received_at_ms: Mapped[int] = mapped_column(BigInteger)
    outcome: Mapped[str] = mapped_column(String(32))
    """``applied``, ``stale`` (older than what we hold), ``ignored`` (not ours or not a type we handle)."""


class BillingPlanChange(Base):
    """Every change of an account's plan: when, from, to, and the event (or job) that caused it."""

    __tablename__ = "billing_plan_change"

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(String(64))
    at_ms: Mapped[int] = mapped_column(BigInteger)
    from_plan: Mapped[str] = mapped_column(String(16))
    to_plan: Mapped[str] = mapped_column(String(16))
    event_id: Mapped[str | None] = mapped_column(String(255))
    reason: Mapped[str] = mapped_column(String(64))

    __table_args__ = (Index("ix_billing_plan_change_user", "user_id", "at_ms"),)
