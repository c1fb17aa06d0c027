"""Fixtures for the visitors tests: apps on SQLite and PostgreSQL with the messaging tests' principals
(``Bearer user-<id>``, ``Bearer admin-<id>``) and fake WhatsApp API, and a site set up through the API."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from bastion.app import Bastion, create_app
from bastion.settings import Settings
from tests.messaging.conftest import FAST, OPEN_LIMITS, database, fake, principals

__all__ = ["database", "fake"]

ROOT = {"Authorization": "Bearer admin-root"}
HOST = {"Authorization": "Bearer user-hana"}
OTHER_HOST = {"Authorization": "Bearer user-otto"}
GUARD = {"Authorization": "Bearer user-gus"}
HOST_PHONE = "+15550001111"
VISITOR_PHONE = "+15551234567"
LIMITS = {**OPEN_LIMITS, "visitors_gate": "100000/minute", "visitors_upload": "100000/minute"}
CRON_SECRET = secrets.token_urlsafe(32)
"""BASTION_CRON_SECRET of the test apps (core's ``POST /cron/{job}``)."""
TEMPLATES = {"visitor_pass": 4, "visitor_arrived": 2, "visitor_reminder": 3, "visitor_digest": 3}


@pytest.fixture
def make_visitors_app(make_settings: Callable[..., Settings], database: dict[str, Any]) -> Callable[..., Bastion]:
    def build(fake: Any = None, **overrides: Any) -> Bastion:
        messaging = {"pair_interval_seconds": 0, **FAST, **overrides.pop("messaging", {})}
        if fake is not None:
            messaging["whatsapp"] = fake.settings()
        settings = make_settings(
            rate_limits=LIMITS, messaging=messaging, **{"cron_secret": CRON_SECRET, **database, **overrides}
        )
        return create_app(settings, extra_modules=(principals,))

    return build


@dataclass
class World:
    site_id: str
    visitor_id: str


async def setup_site(http: httpx.AsyncClient, **site: Any) -> World:
    """A site (root is its admin and message owner) with host hana (phone), host otto, guard gus, the
    templates registered, and one visitor who consented to WhatsApp."""
    answer = await http.post("/api/sites", json={"name": "HQ", "timezone": "Europe/Paris", **site}, headers=ROOT)
    assert answer.status_code == 201, answer.text
    site_id = answer.json()["id"]
    for member in (
        {"account_id": "hana", "role": "host", "name": "Hana", "phone": HOST_PHONE},
        {"account_id": "otto", "role": "host"},
        {"account_id": "gus", "role": "guard"},
    ):
        added = await http.post(f"/api/sites/{site_id}/members", json=member, headers=ROOT)
        assert added.status_code == 201, added.text
    for name, count in TEMPLATES.items():
        registered = await http.post(
            "/api/messaging/templates", json={"name": name, "param_count": count}, headers=ROOT
        )
        assert registered.status_code == 201, registered.text
    visitor = await new_visitor(http, site_id)
    return World(site_id, visitor)


async def new_visitor(http: httpx.AsyncClient, site_id: str, headers: dict[str, str] = HOST, **fields: Any) -> str:
    body = {
        "site_id": site_id,
        "name": "Vera Visitor",
        "phone": VISITOR_PHONE,
        "consent": {"at": "2026-12-01T10:00:00Z", "method": "web form"},
        **fields,
    }
    answer = await http.post("/api/visitors", json=body, headers=headers)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def window(start_in_minutes: float = -5, length_minutes: float = 120) -> dict[str, str]:
    start = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=start_in_minutes)
    return {"starts_at": start.isoformat(), "ends_at": (start + dt.timedelta(minutes=length_minutes)).isoformat()}


async def invite(http: httpx.AsyncClient, world: World, **fields: Any) -> dict[str, Any]:
    body = {"visitor_id": world.visitor_id, **window(), **fields}
    answer = await http.post("/api/visits", json=body, headers=HOST)
    assert answer.status_code == 201, answer.text
    visit: dict[str, Any] = answer.json()
    return visit


def service(app: Bastion, name: str) -> Any:
    provider = app.litestar.dependencies[name]
    return provider.dependency()  # type: ignore[union-attr]
