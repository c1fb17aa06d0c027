"""Fixtures of the Spark runtime tests: apps on SQLite and on PostgreSQL, and a principal resolver for users,
owners and API keys that belong to an app.

    Authorization: Bearer user-<id>         a user
    Authorization: Bearer owner-<id>        a user with the owner role
    Authorization: Bearer key-<app>-<id>    an API key of user <id>, serving app <app>
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

import pytest

from bastion.app import Bastion
from bastion.core.module import Module, ModuleParts
from bastion.core.principal import Principal


class SparkResolver:
    async def __call__(self, scope: Any, ctx: Any) -> Principal | None:
        token = (ctx.authorization or b"").decode().removeprefix("Bearer ")
        kind, _, rest = token.partition("-")
        if kind in ("user", "owner") and rest:
            return Principal(
                kind="user",
                id=rest,
                roles=frozenset({"owner" if kind == "owner" else "user"}),
                attrs=types.MappingProxyType(
                    {"email": f"{rest}@example.com", "login": rest, "avatar_url": f"https://example.com/{rest}.png"}
                ),
            )
        if kind == "key" and rest.count("-") == 1:
            app, user = rest.split("-")
            return Principal(
                kind="api_key",
                id=f"k{user}{app}",
                roles=frozenset({"user"}),
                user_id=user,
                attrs=types.MappingProxyType(
                    {"app": app, "user_id": user, "login": user, "email": f"{user}@example.com", "avatar_url": None}
                ),
            )
        return None


spark_principals: Module[Any] = Module(
    name="spark-test-principals", build=lambda _ctx: ModuleParts(principal_resolver=SparkResolver())
)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def kv_app(request: pytest.FixtureRequest, make_app: Callable[..., Bastion]) -> Callable[..., Bastion]:
    """Builds apps on the embedded SQLite database, or on a fresh PostgreSQL database (migrated at start)."""
    database: dict[str, Any] = {}
    if request.param == "postgres":
        database = {"database_url": request.getfixturevalue("postgres_url"), "auto_migrate": True}

    def build(**overrides: Any) -> Bastion:
        overrides.setdefault("rate_limits", {"kv": "100000/minute", "general": "100000/minute"})
        return make_app(extra=(spark_principals,), **database, **overrides)

    return build
