"""Stripe events: verified on the raw body, applied exactly once, in one transaction with their record.

    receipt = await events.receive(raw_body, request.headers.get("stripe-signature"))

1. ``stripe.WebhookSignature.verify_header`` (the check ``construct_event`` makes) verifies
   ``Stripe-Signature`` on the raw bytes (HMAC-SHA256 of ``t.body``, any ``v1``, 300 s tolerance) before anything
   is parsed: a bad, missing or stale one is :class:`InvalidSignature` (400) and nothing is read or written.
2. One transaction: the event id is claimed (:func:`ledger.claim_event`), then its effect is written. Both
   commit or neither does: a failure rolls back and answers 503 (:class:`EventNotApplied`), so Stripe delivers
   it again and it is applied then; a second delivery of an applied event finds its id and does nothing (200).
3. After the commit, a plan that changed is pushed to identity (every worker drops its cached principals). If
   that push fails the account row says so (``synced_plan``) and the ``billing.sync-plans`` job repeats it.

Order does not matter (see ``state.py``): each description of a subscription is versioned and an older one is
ignored. ``checkout.session.completed`` re-fetches the subscription from Stripe before granting anything.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bastion.billing import ledger
from bastion.billing.errors import EventNotApplied, InvalidSignature
from bastion.billing.ledger import PlanMove
from bastion.billing.models import BillingAccount, BillingEvent, BillingSubscription
from bastion.billing.settings import BillingSettings
from bastion.billing.state import GRANTING, Snapshot, invoice_subscription, is_newer, parse_subscription
from bastion.billing.stripe_api import StripeApi
from bastion.core.db import Database
from bastion.core.errors import AppError
from bastion.core.logging import get_logger

log = get_logger("bastion.billing")
Clock = Callable[[], float]
PlanSync = Callable[[list[PlanMove]], Awaitable[None]]
SUBSCRIPTION_EVENTS = frozenset(
    {"customer.subscription.created", "customer.subscription.updated", "customer.subscription.deleted"}
)
INVOICE_PAID = frozenset({"invoice.paid", "invoice.payment_succeeded"})
CHECKOUT_DONE = frozenset({"checkout.session.completed", "checkout.session.async_payment_succeeded"})
"""A checkout whose payment is done (a delayed method, e.g. a bank debit, succeeds later than ``completed``)."""


@dataclass(frozen=True, slots=True)
class Receipt:
    event_id: str
    duplicate: bool
    outcome: str


@dataclass(slots=True)
class _Applying:
    """One event being applied: its facts, the clock reading, and the plan moves it caused."""

    id: str
    type: str
    created_s: int
    obj: Mapping[str, Any]
    now_ms: int
    moves: list[PlanMove]


class EventProcessor:
    def __init__(
        self, db: Database, api: StripeApi, *, settings: BillingSettings, sync: PlanSync, clock: Clock = time.time
    ) -> None:
        self.db = db
        self.api = api
        self.settings = settings
        self.sync = sync
        self.clock = clock

    def verify(self, payload: bytes, signature: str | None) -> dict[str, Any]:
        secret = self.settings.webhook_secret.get_secret_value()
        if not secret or not signature:
            raise InvalidSignature("Missing Stripe-Signature, or no webhook secret configured.")
        import stripe  # with the first event (see stripe_api.py: 28 MB a worker otherwise)

        try:
            # What ``stripe.Webhook.construct_event`` checks, then the body decoded as plain data: building the
            # SDK's object graph and turning it back into a dict cost ~1 ms of CPU per event (bench/billing.py).
            stripe.WebhookSignature.verify_header(payload, signature, secret, self.settings.webhook_tolerance_seconds)
            found = msgspec.json.decode(payload)
        except stripe.SignatureVerificationError as exc:
            raise InvalidSignature("The Stripe-Signature does not match, or is older than the tolerance.") from exc
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:  # not UTF-8 JSON: cannot be Stripe's
            raise InvalidSignature("The signed body is not a Stripe event.") from exc
        if (
            not isinstance(found, dict)
            or not isinstance(found.get("id"), str)
            or not isinstance(found.get("type"), str)
        ):
            raise InvalidSignature("The signed body is not a Stripe event.")
        return found

    async def receive(self, payload: bytes, signature: str | None) -> Receipt:
        event = self.verify(payload, signature)
        return await self.apply(event)

    async def apply(self, event: Mapping[str, Any]) -> Receipt:
        obj = (event.get("data") or {}).get("object") or {}
        applying = _Applying(
            id=event["id"],
            type=event["type"],
            created_s=int(event.get("created") or 0),
            obj=obj,
            now_ms=int(self.clock() * 1000),
            moves=[],
        )
        if await self._seen(applying.id):
            return Receipt(applying.id, duplicate=True, outcome="duplicate")
        fetched = await self._prefetch(applying)
        try:
            async with self.db.transaction() as session:
                if not await ledger.claim_event(
                    session, applying.id, applying.type, applying.created_s, applying.now_ms
                ):
                    return Receipt(applying.id, duplicate=True, outcome="duplicate")
                outcome = await self._dispatch(session, applying, fetched)
                await ledger.set_outcome(session, applying.id, outcome)
        except AppError:
            raise
        except Exception as exc:
            log.exception("stripe event not applied", event_id=applying.id, event_type=applying.type)
            raise EventNotApplied("The event was not applied and nothing was recorded.") from exc
        log.info("stripe event", event_id=applying.id, event_type=applying.type, outcome=outcome)
        if applying.moves:
            await self.sync(applying.moves)
        return Receipt(applying.id, duplicate=False, outcome=outcome)

    async def _seen(self, event_id: str) -> bool:
        """A cheap look before any work (the claim in the transaction is what decides). On PostgreSQL through the
        driver: an ORM session's one SELECT cost 0.7 ms of CPU against asyncpg's 0.07 ms (bench/billing.py)."""
        if self.db.dialect == "postgresql":
            async with self.db.driver_connection() as conn:
                return await conn.fetchval("SELECT 1 FROM billing_event WHERE id = $1", event_id) is not None
        async with self.db.engine.connect() as conn:
            found = await conn.scalar(select(BillingEvent.id).where(BillingEvent.id == event_id))
            return found is not None

    async def _prefetch(self, applying: _Applying) -> dict[str, Any] | None:
        """The subscription a completed checkout created, as Stripe has it now (outside the transaction)."""
        if applying.type not in CHECKOUT_DONE:
            return None
        sub_id = applying.obj.get("subscription")
        if isinstance(sub_id, Mapping):
            sub_id = sub_id.get("id")
        if not isinstance(sub_id, str):
            return None
        return await self.api.subscription(sub_id)

    async def _dispatch(self, session: AsyncSession, applying: _Applying, fetched: dict[str, Any] | None) -> str:
        kind = applying.type
        if kind in SUBSCRIPTION_EVENTS:
            return await self._subscription(session, applying, parse_subscription(applying.obj), applying.created_s)
        if kind in CHECKOUT_DONE:
            return await self._checkout_completed(session, applying, fetched)
        if kind == "checkout.session.async_payment_failed":
            return await self._checkout_failed(session, applying)
        if kind in INVOICE_PAID or kind == "invoice.payment_failed":
            return await self._invoice(session, applying, failed=kind == "invoice.payment_failed")
        if kind == "customer.subscription.trial_will_end":
            log.info("trial ends soon", subscription=applying.obj.get("id"), trial_end=applying.obj.get("trial_end"))
            return "noted"
        return "ignored"

    async def _owner(
        self, session: AsyncSession, customer: str, hint: str | None, now_ms: int
    ) -> BillingAccount | None:
        """The account a Stripe customer belongs to, locked: ours by customer id, else the account checkout put
        in the metadata (linked to the customer here if it has none yet)."""
        account = await ledger.lock_account_of_customer(session, customer)
        if account is None and hint:
            await ledger.ensure_account(session, hint, now_ms)
            account = await ledger.lock_account(session, hint)
            if account is None or account.customer_id not in (None, customer):
                return None
            account.customer_id = customer
        return account

    async def _checkout_completed(
        self, session: AsyncSession, applying: _Applying, fetched: dict[str, Any] | None
    ) -> str:
        obj = applying.obj
        customer = obj.get("customer")
        hint = obj.get("client_reference_id") or (obj.get("metadata") or {}).get("bastion_user_id")
        if not isinstance(customer, str) or not isinstance(hint, str):
            return "ignored"
        if await self._owner(session, customer, hint, applying.now_ms) is None:
            return "ignored"
        if fetched is None:
            return "applied"
        # What Stripe holds now is at least as new as this event: versioned at the time it was read.
        return await self._subscription(session, applying, parse_subscription(fetched), int(applying.now_ms / 1000))

    async def _checkout_failed(self, session: AsyncSession, applying: _Applying) -> str:
        """A delayed payment failed: the checkout is no longer pending (its subscription's own events follow)."""
        customer = applying.obj.get("customer")
        account = await ledger.lock_account_of_customer(session, customer) if isinstance(customer, str) else None
        if account is None or account.checkout_session_id != applying.obj.get("id"):
            return "ignored"
        account.checkout_session_id = account.checkout_expires_ms = None
        return "applied"

    async def _subscription(self, session: AsyncSession, applying: _Applying, snap: Snapshot, version_s: int) -> str:
        account = await self._owner(session, snap.customer, snap.user_hint, applying.now_ms)
        if account is None:
            return "ignored"
        rows = await ledger.subscriptions(session, account.user_id)
        row = next((r for r in rows if r.id == snap.id), None)
        if row is None:
            row = BillingSubscription(
                id=snap.id, user_id=account.user_id, customer_id=snap.customer, version_s=-1, version_rank=-1
            )
            session.add(row)
            rows.append(row)
        elif not is_newer(row.status, (row.version_s, row.version_rank), (version_s, snap.rank)):
            return "stale"
        row.status, row.price_id, row.item_id = snap.status, snap.price, snap.item
        row.current_period_end_s, row.cancel_at_period_end = snap.current_period_end_s, snap.cancel_at_period_end
        row.trial_end_s, row.version_s, row.version_rank = snap.trial_end_s, version_s, snap.rank
        if row.invoice_version_s is None or version_s >= row.invoice_version_s:
            row.invoice_version_s = version_s
            if snap.status == "past_due":
                row.past_due_since_ms = row.past_due_since_ms or version_s * 1000
            elif snap.status in GRANTING:
                row.past_due_since_ms = None
        account.had_subscription = True
        if snap.status != "incomplete":
            account.checkout_session_id = account.checkout_expires_ms = None
        self._settle(session, account, rows, applying)
        return "applied"

    async def _invoice(self, session: AsyncSession, applying: _Applying, *, failed: bool) -> str:
        sub_id = invoice_subscription(applying.obj)
        if sub_id is None:
            return "ignored"
        # The account first, as everywhere (no deadlock); none before any description of the subscription,
        # which carries the status itself (past_due or active).
        account = await ledger.lock_account_of_subscription(session, sub_id)
        if account is None:
            return "ignored"
        rows = await ledger.subscriptions(session, account.user_id)
        row = next((r for r in rows if r.id == sub_id), None)
        if row is None:
            return "ignored"
        if row.invoice_version_s is not None and applying.created_s < row.invoice_version_s:
            return "stale"
        row.invoice_version_s = applying.created_s
        if failed:
            row.past_due_since_ms = row.past_due_since_ms or applying.created_s * 1000
        else:
            row.past_due_since_ms = None
        self._settle(session, account, rows, applying)
        return "applied"

    def _settle(
        self, session: AsyncSession, account: BillingAccount, rows: list[BillingSubscription], applying: _Applying
    ) -> None:
        move = ledger.settle(
            session,
            account,
            self.settings,
            applying.now_ms,
            ledger.standings_of(rows),
            event_id=applying.id,
            reason=applying.type,
        )
        if move is not None:
            applying.moves.append(move)
