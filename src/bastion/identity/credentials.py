"""Credential resolution: what an API key, an access token or a service secret turns out to be.

    credentials = Credentials(platform.db, signer=signer, services=settings.identity.services)
    resolution = await credentials.resolve_api_key("bsk_…")     # a principal, or a refusal to record
    principal = credentials.resolve_service(secret)              # configured service secrets: a dict lookup

The resolver (resolver.py) calls these on a cache miss and caches the answer. They never raise: a database
that cannot answer becomes a refusal (503) that is not cached.
"""

from __future__ import annotations

import functools
import hmac
import time
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jwt
from sqlalchemy import select

from bastion.core.db import Database, unavailable
from bastion.core.dbguard import DatabaseGuard
from bastion.core.errors import AppError, ServiceUnavailable
from bastion.core.principal import Principal
from bastion.identity import tokens
from bastion.identity.errors import InvalidToken
from bastion.identity.events import log
from bastion.identity.models import ApiKey, AuthSession, User, utcnow
from bastion.identity.settings import ServiceCredential


@dataclass(slots=True)
class Resolution:
    """What a credential turned out to be: a principal, or a refusal to record for the route guard."""

    principal: Principal | None
    refusal: Callable[[], AppError] | None = None
    """Makes the error to record (a fresh one per request: a cached instance must not be raised twice)."""
    tags: tuple[str, ...] = ()
    lifetime: float | None = None
    cacheable: bool = True
    outage: bool = False
    """The database did not answer: the resolver may serve the cache's last known answer instead."""


def _unavailable(exc: BaseException) -> Resolution:
    """A lookup that failed for want of a database: recorded for the route guard (503), never cached."""
    error: AppError | None = exc if isinstance(exc, AppError) else unavailable(exc)  # CircuitOpen is already one
    if error is None:
        log.error("credential lookup failed", exc_info=exc)
        error = ServiceUnavailable("Credentials cannot be checked right now.", retry_after=5)
    found: AppError = error
    return Resolution(None, lambda: found, cacheable=False, outage=True)


class Credentials:
    def __init__(
        self,
        db: Database,
        *,
        signer: tokens.Signer,
        services: Mapping[str, ServiceCredential],
        guard: DatabaseGuard | None = None,
    ) -> None:
        self.db = db
        self.guard = guard or DatabaseGuard("identity")  # a database that does not answer: 503 (or the cache) at once
        self.signer = signer
        self.services = {
            tokens.digest(cred.secret.get_secret_value()): Principal(
                kind="service",
                id=name,
                roles=frozenset({"service"}),
                scopes=frozenset(cred.scopes),
                attrs=types.MappingProxyType({"service": name}),
            )
            for name, cred in services.items()
        }

    async def resolve_api_key(self, token: str) -> Resolution:
        key_id = tokens.parse_api_key(token)
        refusal = functools.partial(InvalidToken, "The API key is invalid, expired or revoked.")
        if key_id is None:
            return Resolution(None, refusal)
        try:
            row = await self.guard.read(lambda: self._key_and_user(key_id))
        except Exception as exc:  # the resolver must answer: a lookup failure is recorded, not raised
            return _unavailable(exc)
        if row is None:
            return Resolution(None, refusal, tags=(f"k:{key_id}",))
        key, user = row
        now = utcnow()
        tags = (f"k:{key.id}", f"u:{user.id}")
        if (
            not hmac.compare_digest(key.secret_hash, tokens.digest(token))
            or key.revoked_at is not None
            or user.disabled
            or (key.expires_at is not None and key.expires_at <= now)
        ):
            return Resolution(None, refusal, tags=tags)
        principal = Principal(
            kind="api_key",
            id=key.id,
            roles=frozenset({user.role}),
            scopes=frozenset(key.scopes),
            attrs=types.MappingProxyType(
                {
                    "user_id": user.id,
                    "app": key.app,
                    "plan": user.plan,
                    "email": user.email,
                    "login": user.login,
                    "display_name": user.display_name,
                    "avatar_url": user.avatar_url,
                    "key_name": key.name,
                }
            ),
            user_id=user.id,
        )
        lifetime = (key.expires_at - now).total_seconds() if key.expires_at is not None else None
        return Resolution(principal, tags=tags, lifetime=lifetime)

    async def _key_and_user(self, key_id: str) -> Any:
        async with self.db.session() as session:
            query = select(ApiKey, User).join(User, User.id == ApiKey.user_id).where(ApiKey.id == key_id)
            return (await session.execute(query)).one_or_none()

    async def _session_and_user(self, session_id: str) -> Any:
        async with self.db.session() as session:
            query = select(AuthSession, User).join(User, User.id == AuthSession.user_id)
            return (await session.execute(query.where(AuthSession.id == session_id))).one_or_none()

    async def resolve_access_token(self, token: str, *, via: str) -> Resolution:
        try:
            claims = self.signer.verify(token)
        except jwt.ExpiredSignatureError:
            return Resolution(
                None, functools.partial(InvalidToken, "The access token has expired; refresh it."), cacheable=False
            )
        except jwt.InvalidTokenError:
            return Resolution(None, functools.partial(InvalidToken, "The access token is not valid."), cacheable=False)
        user_id, session_id = claims["sub"], claims["sid"]
        tags = (f"u:{user_id}", f"s:{session_id}")
        lifetime = float(claims["exp"]) - time.time()
        try:
            row = await self.guard.read(lambda: self._session_and_user(session_id))
        except Exception as exc:  # the resolver must answer: a lookup failure is recorded, not raised
            return _unavailable(exc)
        if (
            row is None
            or row[1].id != user_id
            or row[0].revoked_at is not None
            or row[1].disabled
            or row[0].expires_at <= utcnow()
        ):
            return Resolution(
                None,
                functools.partial(InvalidToken, "The session has ended; sign in again."),
                tags=tags,
                lifetime=lifetime,
            )
        user = row[1]
        principal = Principal(
            kind="user",
            id=user.id,
            roles=frozenset({user.role}),
            scopes=frozenset({"*"}),
            attrs=types.MappingProxyType(
                {
                    "email": user.email,
                    "login": user.login,
                    "plan": user.plan,
                    "display_name": user.display_name,
                    "avatar_url": user.avatar_url,
                    "session_id": session_id,
                    "auth": via,
                }
            ),
        )
        return Resolution(principal, tags=tags, lifetime=lifetime)

    def resolve_service(self, token: str) -> Principal | None:
        # The digest is compared by dict lookup: an attacker does not control the digest of a guess, so the
        # lookup's timing tells nothing about the secret.
        return self.services.get(tokens.digest(token)) if self.services else None
