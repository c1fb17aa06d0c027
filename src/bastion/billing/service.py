"""The billing service: checkout, portal, status, cancel/resume, change of offer, history; the two jobs.

    billing = BillingService(db, StripeApi(settings), settings=settings, set_plan=identity.set_plan)
    out = await billing.checkout(user_id, email, offer=None, base_url="https://app.example.com")
    status = await billing.status(user_id)                 # plan, state ("pending" until the webhook lands)
    await billing.cancel(user_id, resume=False)            # at period end; resume=True undoes it

Stripe is the source of truth for subscriptions: the calls here ask Stripe to change one, and the change is
applied when Stripe's event arrives (``webhooks.py``), the one path that writes subscription state. Plans go
to identity through ``set_plan`` after each commit; ``sync_plans`` (a declared job) repeats any push that
failed, and ``expire_grace`` withdraws the paid plan once a failed payment's grace period is over.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import select, update

from bastion.billing import ledger
from bastion.billing.errors import AlreadySubscribed, BillingOff, NoCustomer, NoSubscription, UnknownOffer
from bastion.billing.ledger import PlanMove
from bastion.billing.models import BillingAccount, BillingPlanChange, BillingSubscription
from bastion.billing.schemas import CheckoutOut, PlanChangeOut, PortalOut, State, StatusOut, SubscriptionOut
from bastion.billing.settings import BillingSettings, Offer
from bastion.billing.state import FINAL, GRANTING, STATUS_RANK, Standing, grace_ends_ms
from bastion.billing.stripe_api import StripeApi
from bastion.billing.webhooks import Clock, EventProcessor
from bastion.core.db import Database
from bastion.core.errors import NotFound
from bastion.core.logging import get_logger
from bastion.core.principal import Principal

log = get_logger("bastion.billing")
SetPlan = Callable[[str, Any], Awaitable[None]]
EmailOf = Callable[[Principal], Awaitable[str | None]]


async def _no_email(_principal: Principal) -> str | None:
    return None


class BillingService:
    def __init__(
        self,
        db: Database,
        api: StripeApi,
        *,
        settings: BillingSettings,
        set_plan: SetPlan,
        email_of: EmailOf = _no_email,
        clock: Clock = time.time,
    ) -> None:
        self.db = db
        self.api = api
        self.settings = settings
        self.set_plan = set_plan
        self.email_of = email_of
        """The email Stripe's customer gets (identity's profile of the caller)."""
        self.clock = clock
        self.events = EventProcessor(db, api, settings=settings, sync=self.push_plans, clock=clock)

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    def _offer(self, name: str | None) -> tuple[str, Offer]:
        if not self.settings.offers or not self.settings.secret_key.get_secret_value():
            raise BillingOff("Billing is not set up on this server.")
        chosen = name or self.settings.default_offer
        offer = self.settings.offers.get(chosen)
        if offer is None:
            raise UnknownOffer(f"No offer {chosen!r}.", extra={"offers": sorted(self.settings.offers)})
        return chosen, offer

    def _url(self, base_url: str, path: str) -> str:
        return (self.settings.public_url or base_url).rstrip("/") + path

    # -- what the account's owner asks ----------------------------------------------------------------

    async def checkout(self, user_id: str, email: str | None, offer: str | None, base_url: str) -> CheckoutOut:
        """A Checkout session for ``offer`` on the account's one Stripe customer (created on first use)."""
        name, chosen = self._offer(offer)
        account = await self._account(user_id)
        current = await self._current(user_id) if account is not None else None
        if current is not None and current.status in GRANTING:
            raise AlreadySubscribed("This account has a subscription; change its offer or use the portal.")
        customer = account.customer_id if account is not None else None
        if customer is None:
            customer = await self.api.create_customer(user_id, email)
            async with self.db.transaction() as session:
                await ledger.ensure_account(session, user_id, self._now_ms())
                await session.execute(
                    update(BillingAccount)
                    .where(BillingAccount.user_id == user_id, BillingAccount.customer_id.is_(None))
                    .values(customer_id=customer)
                )
            account = await self._account(user_id)
            customer = account.customer_id if account is not None and account.customer_id else customer
        first = account is None or not account.had_subscription
        session_id, url, expires_s = await self.api.create_checkout(
            customer=customer,
            price=chosen.price,
            user_id=user_id,
            offer=name,
            trial_days=self.settings.trial_days if first else 0,
            success_url=self._url(base_url, self.settings.success_path),
            cancel_url=self._url(base_url, self.settings.cancel_path),
        )
        expires_ms = expires_s * 1000 if expires_s else self._now_ms() + self.settings.checkout_pending_seconds * 1000
        async with self.db.transaction() as session:
            await session.execute(
                update(BillingAccount)
                .where(BillingAccount.user_id == user_id)
                .values(checkout_session_id=session_id, checkout_expires_ms=expires_ms)
            )
        return CheckoutOut(session_id=session_id, url=url)

    async def portal(self, user_id: str, base_url: str) -> PortalOut:
        self._offer(None)
        account = await self._account(user_id)
        if account is None or account.customer_id is None:
            raise NoCustomer("Subscribe first: the portal manages an existing subscription.")
        url = await self.api.create_portal(account.customer_id, self._url(base_url, self.settings.portal_return_path))
        return PortalOut(url=url)

    async def status(self, user_id: str) -> StatusOut:
        account = await self._account(user_id)
        current = await self._current(user_id)
        plan = account.plan if account is not None else "free"
        state: State
        if current is not None and current.status in GRANTING:
            state = "canceling" if current.cancel_at_period_end else current.status  # type: ignore[assignment]
        elif (
            account is not None
            and account.checkout_session_id is not None
            and (account.checkout_expires_ms or 0) > self._now_ms()
        ):
            state = "pending"
        elif current is not None and current.status in FINAL:
            state = "canceled"
        else:
            state = "free"
        return StatusOut(plan=plan, state=state, subscription=self._out(current) if current is not None else None)

    async def cancel(self, user_id: str, *, resume: bool) -> SubscriptionOut:
        """Cancel at the end of the paid period (the plan holds until then), or undo that."""
        self._offer(None)
        current = await self._current(user_id)
        if current is None or current.status not in GRANTING:
            raise NoSubscription("No subscription to cancel or resume.")
        answer = await self.api.update_subscription(current.id, {"cancel_at_period_end": not resume})
        return self._answer(current, answer)

    async def change(self, user_id: str, offer: str) -> SubscriptionOut:
        """Move the subscription to another offer's price; Stripe prorates as configured."""
        _, chosen = self._offer(offer)
        current = await self._current(user_id)
        if current is None or current.status not in GRANTING or current.item_id is None:
            raise NoSubscription("No subscription to change; start one with checkout.")
        params = {
            "items": [{"id": current.item_id, "price": chosen.price}],
            "proration_behavior": self.settings.proration_behavior,
            "cancel_at_period_end": False,
        }
        return self._answer(current, await self.api.update_subscription(current.id, params))

    async def history(self, user_id: str, limit: int = 100) -> list[PlanChangeOut]:
        async with self.db.session() as session:
            rows = await session.scalars(
                select(BillingPlanChange)
                .where(BillingPlanChange.user_id == user_id)
                .order_by(BillingPlanChange.at_ms.desc(), BillingPlanChange.id.desc())
                .limit(limit)
            )
            return [PlanChangeOut(r.at_ms, r.from_plan, r.to_plan, r.reason, r.event_id) for r in rows]

    # -- reads ------------------------------------------------------------------------------------------

    async def _account(self, user_id: str) -> BillingAccount | None:
        async with self.db.session() as session:
            return await session.get(BillingAccount, user_id)

    async def _current(self, user_id: str) -> BillingSubscription | None:
        """The account's subscription that matters: a live one first, else the newest."""
        async with self.db.session() as session:
            rows = list(
                await session.scalars(select(BillingSubscription).where(BillingSubscription.user_id == user_id))
            )
        if not rows:
            return None
        return max(rows, key=lambda r: (r.status in GRANTING, r.version_s, STATUS_RANK.get(r.status, 0)))

    def _out(self, row: BillingSubscription) -> SubscriptionOut:
        ends = grace_ends_ms(Standing(row.status, row.price_id, row.past_due_since_ms), self.settings)
        return SubscriptionOut(
            id=row.id,
            status=row.status,
            offer=self.settings.offer_of_price(row.price_id),
            cancel_at_period_end=row.cancel_at_period_end,
            current_period_end=row.current_period_end_s,
            trial_end=row.trial_end_s,
            grace_until=ends // 1000 if ends is not None else None,
        )

    def _answer(self, row: BillingSubscription, answer: dict[str, Any]) -> SubscriptionOut:
        """Stripe's answer to a change, as the account will see it once the event lands."""
        out = self._out(row)
        items = (answer.get("items") or {}).get("data") or [{}]
        price = (items[0].get("price") or {}).get("id")
        return SubscriptionOut(
            id=out.id,
            status=str(answer.get("status") or out.status),
            offer=self.settings.offer_of_price(price) or out.offer,
            cancel_at_period_end=bool(answer.get("cancel_at_period_end")),
            current_period_end=answer.get("current_period_end") or items[0].get("current_period_end"),
            trial_end=answer.get("trial_end"),
            grace_until=out.grace_until,
        )

    # -- plans to identity, and the jobs ----------------------------------------------------------------

    async def push_plans(self, moves: list[PlanMove]) -> None:
        """Tell identity each account's new plan; one that fails stays owed (``synced_plan``) for the job."""
        for move in moves:
            try:
                await self.set_plan(move.user_id, move.to_plan)
            except NotFound:
                log.warning("plan not pushed: no such user in identity", user_id=move.user_id)
            except Exception:
                log.exception("plan push failed; the sync job repeats it", user_id=move.user_id)
                continue
            async with self.db.transaction() as session:
                await session.execute(
                    update(BillingAccount)
                    .where(BillingAccount.user_id == move.user_id, BillingAccount.plan == move.to_plan)
                    .values(synced_plan=move.to_plan)
                )

    async def sync_plans(self) -> int:
        """Push every plan identity has not been told (a push that failed after its commit)."""
        async with self.db.session() as session:
            rows = (
                await session.execute(
                    select(BillingAccount.user_id, BillingAccount.plan, BillingAccount.synced_plan).where(
                        (BillingAccount.synced_plan.is_(None) & (BillingAccount.plan != "free"))
                        | (BillingAccount.synced_plan != BillingAccount.plan)
                    )
                )
            ).all()
        await self.push_plans([PlanMove(user, synced or "free", plan) for user, plan, synced in rows])
        return len(rows)

    async def expire_grace(self) -> int:
        """Withdraw the paid plan of accounts whose failed payment's grace period has ended."""
        cutoff = self._now_ms() - self.settings.grace_period_seconds * 1000
        async with self.db.session() as session:
            users = list(
                await session.scalars(
                    select(BillingSubscription.user_id)
                    .join(BillingAccount, BillingAccount.user_id == BillingSubscription.user_id)
                    .where(BillingSubscription.past_due_since_ms <= cutoff, BillingAccount.plan != "free")
                    .distinct()
                )
            )
        moves: list[PlanMove] = []
        for user_id in users:
            async with self.db.transaction() as session:
                account = await ledger.lock_account(session, user_id)
                if account is None:
                    continue
                found = ledger.standings_of(await ledger.subscriptions(session, user_id))
                move = ledger.settle(
                    session, account, self.settings, self._now_ms(), found, event_id=None, reason="grace_expired"
                )
                if move is not None:
                    moves.append(move)
        await self.push_plans(moves)
        return len(moves)

    async def close(self) -> None:
        await self.api.close()
