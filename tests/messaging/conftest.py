"""Fixtures for the messaging tests: apps on SQLite or PostgreSQL with a test principal resolver
(``Bearer user-<id>``, ``Bearer admin-<id>``), templates and inbound messages set up through the service."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from bastion.app import Bastion, create_app
from bastion.core.module import Module, ModuleParts
from bastion.core.principal import Principal
from bastion.messaging.service import Messaging
from bastion.settings import Settings

OPEN_LIMITS = {"messaging_send": "100000/minute", "general": "100000/minute"}
ALICE = {"Authorization": "Bearer user-alice"}
BOB = {"Authorization": "Bearer user-bob"}
ADMIN = {"Authorization": "Bearer admin-root"}


class Resolver:
    async def __call__(self, scope: Any, ctx: Any) -> Principal | None:
        header = (ctx.authorization or b"").decode()
        for prefix, roles in (("Bearer user-", {"user"}), ("Bearer admin-", {"user", "admin"})):
            if header.startswith(prefix):
                return Principal(kind="user", id=header.removeprefix(prefix), roles=frozenset(roles))
        return None


principals: Module[Any] = Module(name="test-principals", build=lambda _ctx: ModuleParts(principal_resolver=Resolver()))


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest) -> dict[str, Any]:
    if request.param == "postgres":
        return {"database_url": request.getfixturevalue("postgres_url"), "auto_migrate": True}
    return {}


@pytest.fixture
def make_messaging_app(make_settings: Callable[..., Settings], database: dict[str, Any]) -> Callable[..., Bastion]:
    def build(**overrides: Any) -> Bastion:
        messaging = {"pair_interval_seconds": 0, **overrides.pop("messaging", {})}
        settings = make_settings(rate_limits=OPEN_LIMITS, messaging=messaging, **{**database, **overrides})
        return create_app(settings, extra_modules=(principals,))

    return build


def service_of(app: Bastion) -> Messaging:
    provider = app.litestar.dependencies["messaging"]
    service: Messaging = provider.dependency()  # type: ignore[union-attr]
    return service


@pytest.fixture
async def fake() -> Any:
    from tests.messaging.fake_whatsapp import FakeWhatsApp

    server = FakeWhatsApp()
    await server.start()
    yield server
    await server.stop()


FAST = {"retry_delays_seconds": [0.05], "poll_seconds": 0.05, "lease_seconds": 5}
"""Retries and polls fast enough for tests."""


async def open_window(app: Bastion, phone: str) -> None:
    """Record an inbound message from ``phone`` now (its 24-hour window opens)."""
    import sqlalchemy as sa

    from bastion.messaging.models import InboundRow

    service = service_of(app)
    async with service.db.begin() as conn:
        await conn.execute(
            sa.insert(InboundRow).values(
                wamid=f"wamid.in{uuid.uuid4().hex}",
                from_phone=phone,
                kind="text",
                text="hi",
                at_ms=int(service.clock() * 1000),
            )
        )
