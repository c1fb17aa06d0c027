"""Billing's SQL, inside a caller's transaction: claim an event id, lock an account, settle its plan.

Every function takes the open session of one ``db.transaction()``; nothing here commits. ``claim_event`` is
``INSERT … ON CONFLICT DO NOTHING RETURNING``: on PostgreSQL a second transaction inserting the same id waits
on the unique index until the first ends, then finds it (a duplicate) or, if the first rolled back, takes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from bastion.billing.models import BillingAccount, BillingEvent, BillingPlanChange, BillingSubscription
from bastion.billing.settings import BillingSettings
from bastion.billing.state import Standing, account_plan


@dataclass(frozen=True, slots=True)
class PlanMove:
    user_id: str
    from_plan: str
    to_plan: str


def _insert(session: AsyncSession, table: Any) -> Any:
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


async def claim_event(session: AsyncSession, event_id: str, kind: str, created_s: int, now_ms: int) -> bool:
    """Record the event as applied (its outcome is set later in the same transaction); False: already was."""
    statement = (
        _insert(session, BillingEvent)
        .values(id=event_id, type=kind, created_s=created_s, received_at_ms=now_ms, outcome="applied")
        .on_conflict_do_nothing(index_elements=["id"])
        .returning(BillingEvent.id)
    )
    return (await session.execute(statement)).scalar_one_or_none() is not None


async def set_outcome(session: AsyncSession, event_id: str, outcome: str) -> None:
    if outcome != "applied":
        await session.execute(update(BillingEvent).where(BillingEvent.id == event_id).values(outcome=outcome))


async def ensure_account(session: AsyncSession, user_id: str, now_ms: int) -> None:
    statement = (
        _insert(session, BillingAccount)
        .values(user_id=user_id, plan="free", had_subscription=False, updated_at_ms=now_ms)
        .on_conflict_do_nothing(index_elements=["user_id"])
    )
    await session.execute(statement)


async def lock_account(session: AsyncSession, user_id: str) -> BillingAccount | None:
    """The account row, locked until the transaction ends (PostgreSQL; SQLite's writer turn already is)."""
    return await session.scalar(select(BillingAccount).where(BillingAccount.user_id == user_id).with_for_update())


async def lock_account_of_customer(session: AsyncSession, customer_id: str) -> BillingAccount | None:
    """The account of a Stripe customer, locked (one statement: look-up and lock)."""
    return await session.scalar(
        select(BillingAccount).where(BillingAccount.customer_id == customer_id).with_for_update()
    )


async def lock_account_of_subscription(session: AsyncSession, subscription_id: str) -> BillingAccount | None:
    """The account a subscription belongs to, locked (one statement)."""
    owner = select(BillingSubscription.user_id).where(BillingSubscription.id == subscription_id).scalar_subquery()
    return await session.scalar(select(BillingAccount).where(BillingAccount.user_id == owner).with_for_update())


async def subscriptions(session: AsyncSession, user_id: str) -> list[BillingSubscription]:
    """All of an account's subscriptions, locked (the account's lock is taken first, everywhere)."""
    rows = await session.scalars(
        select(BillingSubscription).where(BillingSubscription.user_id == user_id).with_for_update()
    )
    return list(rows)


def standings_of(rows: list[BillingSubscription]) -> list[Standing]:
    return [Standing(r.status, r.price_id, r.past_due_since_ms) for r in rows]


def settle(
    session: AsyncSession,
    account: BillingAccount,
    settings: BillingSettings,
    now_ms: int,
    found: list[Standing],
    *,
    event_id: str | None,
    reason: str,
) -> PlanMove | None:
    """Set the account's plan to what its subscriptions (``found``: their standings, read in this
    transaction) grant now; record the change if it is one."""
    plan = account_plan(found, settings, now_ms)
    if plan == account.plan:
        return None
    move = PlanMove(account.user_id, account.plan, plan)
    session.add(
        BillingPlanChange(
            user_id=account.user_id,
            at_ms=now_ms,
            from_plan=account.plan,
            to_plan=plan,
            event_id=event_id,
            reason=reason,
        )
    )
    account.plan = plan
    account.updated_at_ms = now_ms
    return move
