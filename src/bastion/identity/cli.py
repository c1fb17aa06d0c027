"""``bastion users …`` and ``bastion keys …``: accounts and API keys from the command line.

    bastion users create-owner [--email owner@example.com]     # once, on an empty database
    bastion users create --email ada@example.com --role admin   # prints a generated password once
    bastion users list | set-plan EMAIL pro | set-role EMAIL admin | disable EMAIL | enable EMAIL
    bastion users reset-password EMAIL                          # prints a new password; ends sessions
    bastion users invite [--email x@example.com] [--role admin] [--days 7]
    bastion keys create --user EMAIL --name ci [--scope kv --scope ai] [--app notes] [--days 90]
    bastion keys list [--user EMAIL]
    bastion keys revoke KEY_ID                                  # every running instance drops it at once

Secrets (passwords, keys, invites) are printed once, to stdout, and never logged. The commands use the
same settings as the server (``BASTION_*``) and run against its database; revocations are broadcast to
running instances through Redis or PostgreSQL like the server's own.
"""

from __future__ import annotations

import asyncio
import secrets
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

import click

from bastion.core.errors import AppError
from bastion.core.principal import Principal

if TYPE_CHECKING:
    from bastion.identity.wiring import IdentityParts

T = TypeVar("T")


@asynccontextmanager
async def _parts() -> AsyncIterator[IdentityParts]:
    """Identity's parts over the configured database and stores, without the HTTP app (and without starting
    them: a command only publishes its revocations, it does not listen)."""
    from bastion import __version__
    from bastion.cli import load_settings
    from bastion.core import logging as core_logging
    from bastion.core.module import tier_rates
    from bastion.core.platform import Platform
    from bastion.identity.wiring import IdentityParts

    settings = load_settings()
    core_logging.configure(level="warning", json=False, stream=sys.stderr)
    if settings.migrates_on_start:
        from bastion import migrate

        await asyncio.to_thread(migrate.upgrade, settings)
    from bastion.modules import MODULES

    platform = Platform.build(settings, version=__version__, tiers=tier_rates(settings, MODULES))
    parts = IdentityParts(platform, settings)
    try:
        yield parts
    finally:
        await parts.close()
        await platform.lifecycle.drain()


def _run(work: Callable[[IdentityParts], Awaitable[T]]) -> T:
    """Run ``work(parts)``; a domain error is printed as one line and exits 1."""

    async def main() -> T:
        async with _parts() as parts:
            return await work(parts)

    try:
        return asyncio.run(main())
    except AppError as exc:
        click.echo(f"error: {exc.detail}", err=True)
        sys.exit(1)


@click.group()
def users() -> None:
    """Manage accounts."""


@users.command("create-owner")
@click.option("--email", default=None, help="The owner's address (default BASTION_IDENTITY__OWNER_EMAIL).")
def create_owner(email: str | None) -> None:
    """Create the owner account on an empty database and print its password once."""
    created = _run(lambda s: s.accounts.ensure_owner(email))
    if created is None:
        click.echo("error: accounts exist already; the owner is created only on an empty database.", err=True)
        sys.exit(1)
    user, password = created
    click.echo(f"owner: {user.email}\npassword: {password}\n(shown once)")


@users.command("create")
@click.option("--email", required=True)
@click.option("--role", type=click.Choice(["admin", "user"]), default="user", show_default=True)
@click.option("--plan", type=click.Choice(["free", "pro"]), default="free", show_default=True)
@click.option("--login", default=None)
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin instead of generating one.")
def create_user(email: str, role: str, plan: str, login: str | None, password_stdin: bool) -> None:
    """Create an account; prints a generated password once unless one is given on stdin."""
    password = sys.stdin.readline().rstrip("\n") if password_stdin else secrets.token_urlsafe(18)
    user = _run(
        lambda s: s.accounts.create_user(
            email=email, password=password, login=login, role=cast("Literal['admin', 'user']", role), plan=plan
        )
    )
    click.echo(f"created {user.email} (id {user.id}, {user.role}, {user.plan})")
    if not password_stdin:
        click.echo(f"password: {password}\n(shown once)")


@users.command("list")
def list_users() -> None:
    """One line per account."""
    for user in _run(lambda s: s.accounts.list_users(limit=10_000)):
        state = "disabled" if user.disabled else "active"
        click.echo(f"{user.id}  {user.email}  {user.login}  {user.role}  {user.plan}  {state}")


def _update(email: str, **fields: Any) -> None:
    async def work(parts: IdentityParts) -> Any:
        user = await parts.accounts.find_user(email)
        return await parts.accounts.update_user(None, user.id, **fields)

    user = _run(work)
    click.echo(f"{user.email}: {user.role}, {user.plan}, {'disabled' if user.disabled else 'active'}")


@users.command("set-plan")
@click.argument("email")
@click.argument("plan", type=click.Choice(["free", "pro"]))
def set_plan(email: str, plan: str) -> None:
    """Move an account to a plan."""
    _update(email, plan=plan)


@users.command("set-role")
@click.argument("email")
@click.argument("role", type=click.Choice(["admin", "user"]))
def set_role(email: str, role: str) -> None:
    """Make an account an admin or a user."""
    _update(email, role=role)


@users.command("disable")
@click.argument("email")
def disable(email: str) -> None:
    """Disable an account: its sessions and keys stop working on every instance at once."""
    _update(email, disabled=True)


@users.command("enable")
@click.argument("email")
def enable(email: str) -> None:
    _update(email, disabled=False)


@users.command("reset-password")
@click.argument("email")
def reset_password(email: str) -> None:
    """Set a new generated password (printed once) and end every session of the account."""
    password = secrets.token_urlsafe(18)

    async def work(parts: IdentityParts) -> Any:
        user = await parts.accounts.find_user(email)
        await parts.accounts.set_password(user.id, password)
        return user

    user = _run(work)
    click.echo(f"{user.email}\npassword: {password}\n(shown once; every session was ended)")


@users.command("invite")
@click.option("--email", default=None, help="Bind the invite to this address.")
@click.option("--role", type=click.Choice(["admin", "user"]), default="user", show_default=True)
@click.option("--days", type=click.IntRange(1, 90), default=7, show_default=True)
def invite(email: str | None, role: str, days: int) -> None:
    """Print an invite token for registration (shown once)."""
    made = _run(
        lambda s: s.accounts.create_invite(None, email=email, role=cast("Literal['admin', 'user']", role), days=days)
    )
    click.echo(f"invite: {made.token}\nexpires: {made.expires_at.isoformat()}")


@click.group()
def keys() -> None:
    """Manage API keys."""


@keys.command("create")
@click.option("--user", "email", required=True, help="The owning account (email or id).")
@click.option("--name", required=True)
@click.option("--scope", "scopes", multiple=True, help="Repeat for several; default: all scopes (*).")
@click.option("--app", default=None, help="The app the key serves (its Spark KV namespace).")
@click.option("--days", type=click.IntRange(1, 3650), default=None, help="Expire after this many days.")
def create_key(email: str, name: str, scopes: tuple[str, ...], app: str | None, days: int | None) -> None:
    """Create a key and print it once."""

    async def work(parts: IdentityParts) -> Any:
        user = await parts.accounts.find_user(email)
        # The operator acts for the user with full authority: the key's scopes are whatever is asked.
        actor = Principal(kind="user", id=user.id, roles=frozenset({"owner"}), scopes=frozenset({"*"}))
        return await parts.api_keys.create(actor, name=name, scopes=scopes or ("*",), app=app, expires_in_days=days)

    view, token = _run(work)
    click.echo(f"key: {token}\nid: {view.id}  scopes: {','.join(view.scopes)}\n(shown once)")


@keys.command("list")
@click.option("--user", "email", default=None, help="Only this account's keys.")
def list_keys(email: str | None) -> None:
    """One line per live key (never the key itself)."""

    async def work(parts: IdentityParts) -> list[tuple[str, Any]]:
        accounts = parts.accounts
        people = [await accounts.find_user(email)] if email else await accounts.list_users(limit=10_000)
        return [(u.email, k) for u in people for k in await parts.api_keys.of_user(u.id)]

    for owner, key in _run(work):
        used = key.last_used_at.isoformat() if key.last_used_at else "never"
        click.echo(f"{key.id}  {key.prefix}  {owner}  {key.name}  {','.join(key.scopes)}  last used {used}")


@keys.command("revoke")
@click.argument("key_id")
def revoke_key(key_id: str) -> None:
    """Revoke a key; running instances refuse it at once."""
    _run(lambda s: s.api_keys.revoke(key_id.removeprefix("bsk_"), actor=None))
    click.echo(f"revoked {key_id}")
