"""API keys: made by a user for a program, scoped, capped by plan, revoked everywhere at once.

    keys = ApiKeys(platform.db, accounts=accounts, settings=settings.identity, invalidate=bus.publish)
    view, key = await keys.create(principal, name="ci", scopes=["kv"], app="notes")   # key shown once
    await keys.revoke(view.id, actor=principal)

Only the SHA-256 of a key is stored; its ``bsk_<id>`` prefix is what lists show.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select, update

from bastion.core.db import Database
from bastion.core.dbguard import DatabaseGuard
from bastion.core.principal import Principal, require_user
from bastion.core.text import clean_text
from bastion.identity import tokens
from bastion.identity.accounts import Accounts
from bastion.identity.errors import ApiKeyNotFound, InvalidAccountData, PlanLimitReached, ScopeNotGrantable
from bastion.identity.events import Invalidate, events, log
from bastion.identity.models import ApiKey, utcnow
from bastion.identity.schemas import ApiKeyOut
from bastion.identity.settings import IdentitySettings
from bastion.identity.views import as_key_view

_SCOPE = re.compile(r"^(\*|[a-z][a-z0-9_.:-]{0,63})$")
_APP = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


class ApiKeys:
    def __init__(
        self,
        db: Database,
        *,
        accounts: Accounts,
        settings: IdentitySettings,
        invalidate: Invalidate,
        guard: DatabaseGuard | None = None,
    ) -> None:
        self.db = db
        self.guard = guard or DatabaseGuard("identity")
        self.accounts = accounts
        self.settings = settings
        self.invalidate = invalidate

    async def create(
        self,
        principal: Principal,
        *,
        name: str,
        scopes: Sequence[str] = ("*",),
        app: str | None = None,
        expires_in_days: int | None = None,
    ) -> tuple[ApiKeyOut, str]:
        """A new key for the user the caller acts for. A key cannot grant a scope its creator lacks, and the
        plan caps how many live keys a user holds (owner and admins are exempt)."""
        user_id = require_user(principal)
        wanted = sorted(set(scopes))
        if not wanted or len(wanted) > 32 or not all(_SCOPE.match(scope) for scope in wanted):
            raise InvalidAccountData("scopes", "1-32 scopes: '*' or lower-case names such as 'kv' or 'ai:chat'.")
        if app is not None and not _APP.match(app):
            raise InvalidAccountData("app", "Lower-case letters, digits, '.', '_' and '-', at most 64.")
        if not principal.has_scope("*") and not set(wanted) <= principal.scopes:
            raise ScopeNotGrantable("A key can only grant scopes its creator holds.")
        label = clean_text(name, multiline=False).strip()[:100]
        if not label:
            raise InvalidAccountData("name", "Give the key a name.")
        user = await self.accounts.get_user(user_id)
        now = utcnow()
        key, token = await self.guard.write(lambda: self._insert(user, wanted, label, app, expires_in_days, now))
        log.info("api key created", key_id=key.id, user_id=user_id)
        events.labels("api_key", "created").inc()
        return as_key_view(key), token

    async def _insert(
        self, user: Any, wanted: list[str], label: str, app: str | None, expires_in_days: int | None, now: dt.datetime
    ) -> tuple[ApiKey, str]:
        user_id = user.id
        async with self.db.transaction() as session:
            live = await session.scalar(
                select(func.count())
                .select_from(ApiKey)
                .where(
                    ApiKey.user_id == user_id,
                    ApiKey.revoked_at.is_(None),
                    (ApiKey.expires_at.is_(None)) | (ApiKey.expires_at > now),
                )
            )
            cap = self.settings.plan_limits(user.plan).api_keys
            if user.role == "user" and (live or 0) >= cap:
                raise PlanLimitReached(
                    f"The {user.plan} plan allows {cap} API keys; revoke one or upgrade.", extra={"limit": cap}
                )
            key_id, token = tokens.new_api_key()
            expires = now + dt.timedelta(days=expires_in_days) if expires_in_days else None
            key = ApiKey(
                id=key_id,
                user_id=user_id,
                name=label,
                secret_hash=tokens.digest(token),
                scopes=wanted,
                app=app,
                created_at=now,
                expires_at=expires,
            )
            session.add(key)
        return key, token

    async def of_user(self, user_id: str) -> list[ApiKeyOut]:
        """The user's live keys (never the keys themselves)."""
        query = (
            select(ApiKey)
            .where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
            .order_by(ApiKey.created_at, ApiKey.id)
        )

        async def read() -> list[ApiKeyOut]:
            async with self.db.session() as session:
                return [as_key_view(k) for k in await session.scalars(query)]

        return await self.guard.read(read)

    async def revoke(self, key_id: str, *, actor: Principal | None) -> None:
        """Revoke a key of the caller's (any key for the owner, an admin, or ``actor=None``: the CLI). Takes
        effect on every instance before this returns (see bus.py)."""
        query = update(ApiKey).where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
        if actor is not None and not actor.has_role("owner", "admin"):
            query = query.where(ApiKey.user_id == require_user(actor))

        async def write() -> None:
            async with self.db.transaction() as session:
                done = await session.execute(query.values(revoked_at=utcnow()).returning(ApiKey.id))
                if done.scalar_one_or_none() is None:
                    raise ApiKeyNotFound("No such API key.")

        await self.guard.write(write)
        await self.invalidate([f"k:{key_id}"])
        log.info("api key revoked", key_id=key_id)
        events.labels("api_key", "revoked").inc()
