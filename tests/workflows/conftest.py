"""Fixtures of the workflows tests: an app with identity and workflows, users signed in with a plan."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from bastion.app import Bastion
from bastion.settings import Settings
from tests.conftest import serve
from tests.identity.conftest import FAST_ARGON, bearer, identity_of, register
from tests.workflows.builders import broken, corpus
from tests.workflows.fake_ghl import FakeGhl

OPEN_LIMITS = {"general": "100000/minute", "workflows_analyze": "100000/minute", "auth": "100000/minute"}


@dataclass
class User:
    id: str
    headers: dict[str, str]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest) -> dict[str, Any]:
    if request.param == "sqlite":
        return {}
    return {"database_url": request.getfixturevalue("postgres_url"), "auto_migrate": True}


@pytest.fixture
def wf_settings(make_settings: Callable[..., Settings], database: dict[str, Any]) -> Callable[..., Settings]:
    def build(
        workflows: dict[str, Any] | None = None, identity: dict[str, Any] | None = None, **overrides: Any
    ) -> Settings:
        return make_settings(
            identity={**FAST_ARGON, "bootstrap_owner": False, **(identity or {})},
            workflows=workflows or {},
            rate_limits=OPEN_LIMITS,
            **{**database, **overrides},
        )

    return build


@pytest.fixture
def wf_app(make_app: Callable[..., Bastion], wf_settings: Callable[..., Settings]) -> Callable[..., Bastion]:
    def build(workflows: dict[str, Any] | None = None, **overrides: Any) -> Bastion:
        return make_app(wf_settings(workflows, **overrides))

    return build


@asynccontextmanager
async def running(app: Bastion) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(app) as http:
        yield http


async def sign_up(http: httpx.AsyncClient, app: Bastion, email: str, plan: str = "free") -> User:
    session = await register(http, email=email)
    user_id = str(session["user"]["id"])
    if plan != "free":
        await identity_of(app).set_plan(user_id, plan)  # type: ignore[arg-type]
    return User(user_id, bearer(session["access_token"]))


@pytest.fixture
async def ghl() -> AsyncIterator[FakeGhl]:
    fake = FakeGhl()
    fake.add_location("loc_1", "Main Street Dental", corpus()["lead_nurture"], broken())
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


@pytest.fixture
def ghl_app(wf_app, ghl):
    def build(workflows: dict[str, Any] | None = None, **overrides: Any):
        providers = {
            "gohighlevel": ghl.provider_settings(),
            "ghl-agency": {**ghl.provider_settings(), "token_params": {"user_type": "Company"}},
        }
        return wf_app(
            ghl.workflows_settings(**(workflows or {})),
            identity={"oauth_providers": providers, "oauth_timeout_seconds": 2.0},
            **overrides,
        )

    return build


async def ghl_sign_in(http: httpx.AsyncClient, provider: str = "gohighlevel") -> dict[str, str]:
    """Bastion → GHL's location chooser → Bastion's callback; returns the CSRF header for unsafe requests."""
    start = await http.get(f"/auth/login/{provider}")
    assert start.status_code == 302, start.text
    async with httpx.AsyncClient() as browser:
        chosen = await browser.get(start.headers["location"])
    assert chosen.status_code == 302, chosen.text
    done = await http.get(chosen.headers["location"])
    assert done.status_code == 302, done.text
    return {"X-CSRF-Token": http.cookies["bastion_csrf"]}


def db_of(app: Bastion) -> Any:
    return app.litestar.dependencies["workflows"].dependency().service.db  # type: ignore[union-attr]
