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
