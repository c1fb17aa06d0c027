"""Fixtures of the identity tests: apps on SQLite and on the real PostgreSQL, fast argon2 parameters,
protected probe routes, and helpers to sign in."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, cast

import httpx
import pytest
from litestar import Request, get, post

from bastion.app import Bastion
from bastion.core.module import Module, ModuleParts
from bastion.core.principal import require_principal, require_scope
from bastion.identity import service as identity_service
from bastion.identity.service import IdentityService
from bastion.settings import Settings
from tests.support import routes_module

SQLITE_ONLY = pytest.mark.parametrize("database", ["sqlite"], indirect=True)
"""For behaviour that does not depend on the database: run on the embedded default only (faster)."""
FAST_ARGON = {"argon2_time_cost": 1, "argon2_memory_kib": 1024, "argon2_parallelism": 1}
PASSWORD = "correct horse battery staple"


def _describe(request: Request[Any, Any, Any]) -> dict[str, Any]:
    principal = require_principal(cast("Any", request.scope))
    return {
        "kind": principal.kind,
        "id": principal.id,
        "roles": sorted(principal.roles),
        "scopes": sorted(principal.scopes),
        "attrs": dict(principal.attrs),
    }


@get("/t/id/whoami")
async def whoami(request: Request[Any, Any, Any]) -> dict[str, Any]:
    return _describe(request)


@post("/t/id/whoami", status_code=200)
async def whoami_post(request: Request[Any, Any, Any]) -> dict[str, Any]:
    return _describe(request)


@get("/t/id/kv")
async def needs_kv_scope(request: Request[Any, Any, Any]) -> dict[str, str]:
    return {"id": require_scope(cast("Any", request.scope), "kv").id}


probe_module = Module(
    name="identity-probes", build=lambda _ctx: ModuleParts(route_handlers=[whoami, whoami_post, needs_kv_scope])
)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Settings overrides for the database under test: the embedded SQLite file, or a fresh PostgreSQL one."""
    if request.param == "sqlite":
        return {}
    return {"database_url": request.getfixturevalue("postgres_url"), "auto_migrate": True}


@pytest.fixture
def identity_settings(make_settings: Callable[..., Settings]) -> Callable[..., Settings]:
    def build(identity: dict[str, Any] | None = None, **overrides: Any) -> Settings:
        return make_settings(identity={**FAST_ARGON, "bootstrap_owner": False, **(identity or {})}, **overrides)

    return build


@pytest.fixture
def identity_app(
    make_app: Callable[..., Bastion], identity_settings: Callable[..., Settings], database: dict[str, Any]
) -> Callable[..., Bastion]:
    """An app with the identity module and the probe routes, on the parametrised database."""

    def build(identity: dict[str, Any] | None = None, settings: Settings | None = None, **overrides: Any) -> Bastion:
        chosen = settings or identity_settings(identity, **{**database, **overrides})
        return make_app(chosen, extra=(routes_module, probe_module))

    return build


def service_of(app: Bastion) -> IdentityService:
    return identity_service.instance(app.platform)


def client_for(app: Bastion, address: str = "198.51.100.7") -> httpx.AsyncClient:
    """Another client of a running app (its own cookies, its own address)."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=(address, 40000)), base_url="http://localhost"
    )


@asynccontextmanager
async def other_client(app: Bastion, address: str) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app, address) as http:
        yield http


async def register(
    http: httpx.AsyncClient, email: str = "ada@example.com", password: str = PASSWORD, mode: str = "token", **extra: Any
) -> dict[str, Any]:
    response = await http.post("/auth/register", json={"email": email, "password": password, "mode": mode, **extra})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def new_key(http: httpx.AsyncClient, access_token: str, **fields: Any) -> dict[str, Any]:
    response = await http.post("/api/keys", json={"name": "ci", **fields}, headers=bearer(access_token))
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body
