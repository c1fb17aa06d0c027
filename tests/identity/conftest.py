"""Fixtures of the identity tests: apps on SQLite and on the real PostgreSQL, fast argon2 parameters,
protected probe routes, and helpers to sign in."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from litestar import get, post

from bastion.app import Bastion
from bastion.core.dependencies import AppRequest
from bastion.core.module import Module, ModuleParts
from bastion.core.principal import require_scope_of
from bastion.identity.resolver import IdentityResolver
from bastion.identity.service import Identity
from bastion.identity.wiring import IdentityParts
from bastion.settings import Settings
from tests.support import routes_module

SQLITE_ONLY = pytest.mark.parametrize("database", ["sqlite"], indirect=True)
"""For behaviour that does not depend on the database: run on the embedded default only (faster)."""
FAST_ARGON = {"argon2_time_cost": 1, "argon2_memory_kib": 1024, "argon2_parallelism": 1}
PASSWORD = "correct horse battery staple"


def _describe(request: AppRequest) -> dict[str, Any]:
    principal = request.principal
    return {
        "kind": principal.kind,
        "id": principal.id,
        "user_id": principal.user_id,
        "roles": sorted(principal.roles),
        "scopes": sorted(principal.scopes),
        "attrs": dict(principal.attrs),
    }


@get("/t/id/whoami")
async def whoami(request: AppRequest) -> dict[str, Any]:
    return _describe(request)


@post("/t/id/whoami", status_code=200)
async def whoami_post(request: AppRequest) -> dict[str, Any]:
    return _describe(request)


@get("/t/id/kv")
async def needs_kv_scope(request: AppRequest) -> dict[str, str]:
    return {"id": require_scope_of(request.principal, "kv").id}


probe_module: Module[Any] = Module(
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

    def build(
        identity: dict[str, Any] | None = None,
        settings: Settings | None = None,
        extra: tuple[Module[Any], ...] = (routes_module, probe_module),
        **overrides: Any,
    ) -> Bastion:
        chosen = settings or identity_settings(identity, **{**database, **overrides})
        return make_app(chosen, extra=extra)

    return build


def service_of(app: Bastion) -> IdentityParts:
    """The identity module's parts inside a built app (what its router is given)."""
    parts: IdentityParts = app.litestar.dependencies["identity"].dependency()  # type: ignore[union-attr]
    return parts


def new_resolver(parts: IdentityParts) -> IdentityResolver:
    """A resolver of its own over an app's identity parts (its own single-flight, the app's cache)."""
    return IdentityResolver(
        credentials=parts.credentials,
        cache=parts.cache,
        last_used=parts.last_used,
        csrf=parts.csrf,
        settings=parts.config,
        lifecycle=parts.lifecycle,
    )


def identity_of(app: Bastion) -> Identity:
    """The facade the identity module provides to other modules."""
    return service_of(app).facade


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
