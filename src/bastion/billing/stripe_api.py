"""The Stripe calls billing makes, through the official SDK's async client, under core's one upstream path.

    api = StripeApi(settings)                      # StripeClient(base_addresses={"api": settings.api_base})
    customer = await api.create_customer(user_id, email)
    session = await api.create_checkout(customer=…, price=…, user_id=…, offer=…, …)

The SDK's own retries are off (``max_network_retries=0``): :class:`Upstream` retries, on what
:func:`classify_stripe` calls transient, and every POST carries an ``Idempotency-Key`` made once per
logical call, so a repeated attempt is the same request to Stripe. Its HTTP client is the SDK's
``HTTPXClient``, whose async path uses an ``httpx.AsyncClient``: no thread, no blocking call on the loop.

The SDK is imported with the first call, not at start-up: ``import stripe`` costs 28 MB of resident memory and
0.33 s per worker (measured 2026-12-03), which a server without billing configured should not pay.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

from bastion.billing.errors import StripeRefused, StripeUnavailable
from bastion.billing.settings import BillingSettings
from bastion.core.upstream import Upstream, UpstreamSettings, Verdict

if TYPE_CHECKING:
    import stripe

T = TypeVar("T")


def classify_stripe(exc: BaseException) -> Verdict:
    """Connection errors, timeouts and 5xx: Stripe's fault, retried (every POST is idempotent by key); 429:
    retried, not a failure; any other 4xx is our request's fault: neither."""
    import stripe

    if isinstance(exc, stripe.RateLimitError):
        return Verdict(failure=False, retry=True, fall_back=False)
    if isinstance(exc, stripe.APIConnectionError | TimeoutError):
        return Verdict(failure=True, retry=True, fall_back=False)
    if isinstance(exc, stripe.StripeError):
        status = exc.http_status or 500
        return Verdict(failure=status >= 500, retry=status >= 500, fall_back=False)
    return Verdict(failure=True, retry=False, fall_back=False)


class StripeApi:
    def __init__(self, settings: BillingSettings) -> None:
        self.settings = settings
        upstream = UpstreamSettings(
            timeout_seconds=settings.timeout_seconds, retries=settings.retries, max_concurrent=settings.max_concurrent
        )
        self.upstream = Upstream("stripe", upstream, classify_stripe)

    @cached_property
    def http(self) -> stripe.HTTPXClient:
        import stripe

        return stripe.HTTPXClient(timeout=self.settings.timeout_seconds)

    @cached_property
    def client(self) -> stripe.StripeClient:
        import stripe

        return stripe.StripeClient(
            self.settings.secret_key.get_secret_value() or "sk_not_configured",
            base_addresses={"api": self.settings.api_base} if self.settings.api_base else None,
            http_client=self.http,
            max_network_retries=0,
        )

    async def _call(self, fn: Callable[[], Awaitable[T]]) -> T:
        import stripe

        try:
            return await self.upstream.call(fn)
        except stripe.StripeError as exc:
            status = exc.http_status or 0
            if 400 <= status < 500 and status != 429:
                raise StripeRefused(f"Stripe refused the request ({exc.code or status}).") from exc
            raise StripeUnavailable("Stripe did not answer; try again shortly.") from exc
        except TimeoutError as exc:
            raise StripeUnavailable("Stripe did not answer in time; try again shortly.") from exc

    @staticmethod
    def _key(kind: str, stable: str | None = None) -> dict[str, Any]:
        return {"idempotency_key": f"bastion-{kind}-{stable or uuid.uuid4().hex}"}

    async def create_customer(self, user_id: str, email: str | None) -> str:
        """One customer per account: the key is the account's, so two racing checkouts get the same one
        (Stripe keeps idempotency keys 24 h; after that the account row already holds the id)."""
        params: dict[str, Any] = {"metadata": {"bastion_user_id": user_id}}
        if email:
            params["email"] = email
        options = self._key("customer", user_id)
        customer = await self._call(lambda: self.client.v1.customers.create_async(params, options))  # type: ignore[arg-type]
        return str(customer.id)

    async def create_checkout(
        self,
        *,
        customer: str,
        price: str,
        user_id: str,
        offer: str,
        trial_days: int,
        success_url: str,
        cancel_url: str,
    ) -> tuple[str, str, int | None]:
        """A hosted Checkout session for a subscription: (id, url, expires_at)."""
        metadata = {"bastion_user_id": user_id, "offer": offer}
        subscription_data: dict[str, Any] = {"metadata": metadata}
        if trial_days:
            subscription_data["trial_period_days"] = trial_days
        params: dict[str, Any] = {
            "mode": "subscription",
            "customer": customer,
            "client_reference_id": user_id,
            "line_items": [{"price": price, "quantity": 1}],
            "success_url": success_url,
            "cancel_url": cancel_url,
            "metadata": metadata,
            "subscription_data": subscription_data,
        }
        options = self._key("checkout")
        session = await self._call(lambda: self.client.v1.checkout.sessions.create_async(params, options))  # type: ignore[arg-type]
        expires = getattr(session, "expires_at", None)
        return str(session.id), str(session.url), int(expires) if expires is not None else None

    async def create_portal(self, customer: str, return_url: str) -> str:
        params: dict[str, Any] = {"customer": customer, "return_url": return_url}
        options = self._key("portal")
        session = await self._call(lambda: self.client.v1.billing_portal.sessions.create_async(params, options))  # type: ignore[arg-type]
        return str(session.url)

    async def subscription(self, subscription_id: str) -> dict[str, Any]:
        found = await self._call(lambda: self.client.v1.subscriptions.retrieve_async(subscription_id))
        return found.to_dict()

    async def update_subscription(self, subscription_id: str, params: dict[str, Any]) -> dict[str, Any]:
        options = self._key("subscription")
        found = await self._call(
            lambda: self.client.v1.subscriptions.update_async(subscription_id, params, options)  # type: ignore[arg-type]
        )
        return found.to_dict()

    async def close(self) -> None:
        if "http" in self.__dict__:  # created by a first call
            await self.http.close_async()  # type: ignore[no-untyped-call]
