"""Bastion for bench/visitors.py: the whole app, configured from the environment, with a principal resolver
that takes ``Authorization: Bearer bench-<id>`` as user <id> (``bench-root`` is a platform admin): the
benchmark measures the gate, not sign-in."""

from __future__ import annotations

from typing import Any

from bastion.app import create_app
from bastion.core.module import Module, ModuleParts
from bastion.core.principal import Principal


class BenchResolver:
    async def __call__(self, scope: Any, ctx: Any) -> Principal | None:
        header = (ctx.authorization or b"").decode()
        if header.startswith("Bearer bench-"):
            who = header.removeprefix("Bearer bench-")
            roles = frozenset({"user", "admin"} if who == "root" else {"user"})
            return Principal(kind="user", id=who, roles=roles)
        return None


app = create_app(
    extra_modules=[Module(name="bench", build=lambda _ctx: ModuleParts(principal_resolver=BenchResolver()))]
)
