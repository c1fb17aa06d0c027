"""Fixtures for the secrets tests: every backend (SQLite, PostgreSQL, Redis) behind one parametrised
fixture, a controllable clock, and apps configured for fast argon2 and generous rate limits."""

from __future__ import annotations

import asyncio
import base64
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bastion import migrate
from bastion.app import Bastion, create_app
from bastion.core.crypto import Keyring
from bastion.core.db import Database
from bastion.core.stores import MemoryStore, Store
from bastion.secrets.backends.base import SecretBackend
from bastion.secrets.service import Caller, SecretsService
from bastion.secrets.settings import SecretsSettings
from bastion.settings import Settings
from tests.support import FakeClock, principal_module

FAST_ARGON2 = {"argon2_time_cost": 1, "argon2_memory_kib": 8}
OPEN_LIMITS = {"secrets_create": "100000/minute", "secrets_read": "100000/minute", "general": "100000/minute"}
BACKENDS = ["sqlite", "postgres", "redis"]
ALICE = Caller(client="203.0.113.10", rate_key="ip:203.0.113.10")
BOB = Caller(client="198.51.100.20", rate_key="ip:198.51.100.20")


@dataclass
class Stack:
    """One backend with a service in front of it, and what a test needs to look underneath."""

    kind: str
    backend: SecretBackend
    service: SecretsService
    clock: FakeClock
    store: Store
    db: Database | None = None
    redis: Any = None
    prefix: str = ""

    def with_settings(self, **overrides: Any) -> SecretsService:
        """Another service on the same backend and clock, with other settings."""
        settings = SecretsSettings(**{**FAST_ARGON2, **overrides})
        return SecretsService(
            self.backend, keyring=self.service.keyring, store=self.store, settings=settings, clock=self.clock
        )


def keyring() -> Keyring:
    return Keyring({"k1": os.urandom(32)}, "k1")


async def migrated_database(settings: Settings) -> Database:
    await asyncio.to_thread(migrate.upgrade, settings)
    return Database.from_settings(settings)


@pytest.fixture(params=BACKENDS)
def backend_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def service_urls(backend_kind: str, request: pytest.FixtureRequest) -> dict[str, str]:
    """The real service the backend needs (resolved here, in a sync fixture: the PostgreSQL database
    fixture is async and cannot be requested from inside a running event loop)."""
    if backend_kind == "postgres":
        return {"database_url": request.getfixturevalue("postgres_url")}
    if backend_kind == "redis":
        return {"redis_url": request.getfixturevalue("redis_url")}
    return {}


@pytest.fixture
async def stack(
    backend_kind: str, service_urls: dict[str, str], make_settings: Callable[..., Settings]
) -> AsyncIterator[Stack]:
    """A SecretsService over the parametrised backend, with a fake clock and an in-process lock store."""
    # real time at the start: Redis sets native expiries from these values (PEXPIREAT), which must lie in
    # the future or Redis would drop the keys at once
    clock = FakeClock(start=time.time())
    settings = SecretsSettings(**FAST_ARGON2)
    ring = keyring()
    if backend_kind == "redis":
        from bastion.core.stores.redis import connect
        from bastion.secrets.backends.redis import RedisBackend

        client = connect(service_urls["redis_url"], timeout=5.0)
        prefix = f"tsec{uuid.uuid4().hex[:10]}:"
        backend: SecretBackend = RedisBackend(client, prefix=prefix, retention_ms=3_600_000)
        store = MemoryStore()
        yield Stack(
            backend_kind,
            backend,
            SecretsService(backend, keyring=ring, store=store, settings=settings, clock=clock),
            clock,
            store,
            redis=client,
            prefix=prefix,
        )
        keys = [key async for key in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
        return
    from bastion.secrets.backends.sql import SqlBackend

    db = await migrated_database(
        make_settings(database_url=service_urls.get("database_url"), db_pool_size=20, db_max_overflow=20)
    )
    backend = SqlBackend(db)
    store = MemoryStore()
    try:
        yield Stack(
            backend_kind,
            backend,
            SecretsService(backend, keyring=ring, store=store, settings=settings, clock=clock),
            clock,
            store,
            db=db,
        )
    finally:
        await db.close()


@pytest.fixture
def app_settings(
    backend_kind: str, service_urls: dict[str, str], make_settings: Callable[..., Settings]
) -> Callable[..., Settings]:
    """Settings for whole apps on the parametrised backend (fast argon2, limits out of the way)."""
    base: dict[str, Any] = {
        "rate_limits": OPEN_LIMITS,
        "crypto": {"keys": {"k1": base64.b64encode(os.urandom(32)).decode()}, "active_key_id": "k1"},
    }
    base.update(service_urls)
    if backend_kind == "postgres":
        base["auto_migrate"] = True

    def build(**overrides: Any) -> Settings:
        secrets = {
            **FAST_ARGON2,
            **({"backend": "redis"} if backend_kind == "redis" else {}),
            **overrides.pop("secrets", {}),
        }
        return make_settings(**{**base, "secrets": secrets, **overrides})

    return build


@pytest.fixture
def make_secrets_app(make_settings: Callable[..., Settings]) -> Callable[..., Bastion]:
    """An app on the embedded default (SQLite), with fast argon2 and the test principal resolver
    (``Authorization: Bearer user-<id>``)."""

    def build(settings: Settings | None = None, **overrides: Any) -> Bastion:
        if settings is None:
            secrets = {**FAST_ARGON2, **overrides.pop("secrets", {})}
            settings = make_settings(secrets=secrets, **overrides)
        return create_app(settings, extra_modules=(principal_module,))

    return build


def service_of(app: Bastion) -> SecretsService:
    """The secrets service inside a built app (to reach its clock in tests)."""
    provider = app.litestar.dependencies["secrets_service"]
    service: SecretsService = provider.dependency()  # type: ignore[union-attr]
    return service


def database_path(settings: Settings) -> Path:
    return settings.data_dir.resolve() / "bastion.db"
