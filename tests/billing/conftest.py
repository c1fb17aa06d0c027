"""Fixtures of the billing tests: a fake Stripe on a local port, an app (identity + billing) pointed at it on
SQLite or PostgreSQL, a signed-up account, and a helper that delivers signed events."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from bastion.app import Bastion
from bastion.billing.service import BillingService
from bastion.settings import Settings
from tests.billing.fake_stripe import FakeStripe, signed
from tests.conftest import serve
from tests.identity.conftest import FAST_ARGON, register
from tests.support import FakeClock

OPEN_LIMITS = {"auth": "10000/minute", "billing": "10000/minute", "billing_webhook": "100000/minute"}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest) -> dict[str, Any]:
    if request.param == "sqlite":
        return {}
    return {"database_url": request.getfixturevalue("postgres_url"), "auto_migrate": True}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def fake(clock: FakeClock) -> AsyncIterator[FakeStripe]:
    stripe = FakeStripe(clock=clock)
    await stripe.start()
    try:
        yield stripe
    finally:
        await stripe.stop()


def billing_of(app: Bastion) -> BillingService:
    """The billing service inside a built app (what its router is given)."""
    service: BillingService = app.litestar.dependencies["billing"].dependency()  # type: ignore[union-attr]
    return service


def use_clock(app: Bastion, clock: Callable[[], float]) -> BillingService:
    """Make the app's billing read ``clock`` (grace periods, pending checkouts) instead of the wall clock."""
    service = billing_of(app)
    service.clock = service.events.clock = clock
    return service


@pytest.fixture
def billing_settings(
    make_settings: Callable[..., Settings], fake: FakeStripe, database: dict[str, Any]
) -> Callable[..., Settings]:
    def build(**billing: Any) -> Settings:
        return make_settings(
            identity={**FAST_ARGON, "bootstrap_owner": False},
            billing=fake.settings(**billing),
            rate_limits=OPEN_LIMITS,
            **database,
        )

    return build


@dataclass
class Customer:
    """A signed-up account of a running app, and the app's view of billing."""

    http: httpx.AsyncClient
    app: Bastion
    fake: FakeStripe
    token: str
    user_id: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def deliver(self, event: dict[str, Any], **sign: Any) -> httpx.Response:
        body, header = signed(event, **sign)
        return await self.http.post(
            "/webhooks/stripe", content=body, headers={"Stripe-Signature": header, "Content-Type": "application/json"}
        )

    async def deliver_all(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            response = await self.deliver(event)
            assert response.status_code == 200, response.text

    async def status(self) -> dict[str, Any]:
        response = await self.http.get("/api/subscription/status", headers=self.auth)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def identity_plan(self) -> str:
        response = await self.http.get("/auth/status", headers=self.auth)
        plan: str = response.json()["user"]["plan"]
        return plan

    async def checkout(self, **body: Any) -> dict[str, Any]:
        response = await self.http.post("/api/subscription/checkout", json=body, headers=self.auth)
        assert response.status_code == 200, response.text
        out: dict[str, Any] = response.json()
        return out

    async def subscribe(self) -> tuple[str, list[dict[str, Any]]]:
        """Checkout, paid on the fake's page: the subscription id and the events Stripe would send."""
        session = await self.checkout()
        events = self.fake.complete_checkout(session["session_id"])
        return self.fake.sessions[session["session_id"]]["subscription"], events


async def sign_up(http: httpx.AsyncClient, app: Bastion, fake: FakeStripe, email: str = "ada@example.com") -> Customer:
    body = await register(http, email=email)
    return Customer(http, app, fake, body["access_token"], body["user"]["id"])


@pytest.fixture
async def customer(
    make_app: Callable[..., Bastion], billing_settings: Callable[..., Settings], fake: FakeStripe, clock: FakeClock
) -> AsyncIterator[Customer]:
    """An app on the parametrised database, billing through the fake, with one signed-up account."""
    app = make_app(billing_settings())
    use_clock(app, clock)
    async with serve(app) as http:
        yield await sign_up(http, app, fake)
