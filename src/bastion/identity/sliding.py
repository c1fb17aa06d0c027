"""Sliding sessions: an expired access-token cookie is renewed at the edge while its session is alive.

A browser app such as a hosted Spark app never calls ``/auth/refresh`` (its client does not know Bastion),
so a cookie session would end with its 15-minute access token. Here the access cookie is the session's
handle: when a request carries one whose signature is ours but whose ``exp`` has passed, its session is
read (one indexed row) and, if it is not revoked, not past its absolute end (``refresh_token_seconds`` from
sign-in) and was used within ``session_idle_seconds``, a fresh access token for the same session replaces it
on this request (so the principal resolves normally) and in the browser (``Set-Cookie``). Revoking the
session, signing out, disabling the user, or idling past the timeout end it, as before.

Concurrent requests with the same expired cookie share one read (single flight), and the answer is kept a
few seconds (the browser sends the old cookie until the first response lands). Bearer tokens are never
renewed: an API client has its refresh token.
"""

from __future__ import annotations

import datetime as dt
import time

import jwt
from litestar.datastructures import Cookie
from sqlalchemy import select

from bastion.core.db import Database
from bastion.core.edge.asgi import CONTEXT_KEY, ASGIApp, Receive, RequestContext, Scope, Send
from bastion.core.resilience import SingleFlight
from bastion.identity.events import log
from bastion.identity.models import AuthSession, User, utcnow
from bastion.identity.resolver import cookie_value
from bastion.identity.settings import IdentitySettings
from bastion.identity.tokens import Signer

_REMEMBER_SECONDS = 10.0
_REMEMBER_MAX = 10_000


class SessionRenewer:
    """Decides whether an expired access token may be renewed, and mints the new one."""

    def __init__(self, db: Database, *, signer: Signer, settings: IdentitySettings) -> None:
        self.db = db
        self.signer = signer
        self.settings = settings
        self._flight: SingleFlight[tuple[str, int] | None] = SingleFlight()
        self._recent: dict[str, tuple[float, tuple[str, int] | None]] = {}

    async def renew(self, token: str) -> tuple[str, int] | None:
        """A fresh access token and its cookie's max-age, or None (still valid, or not ours to renew)."""
        try:
            self.signer.verify(token)
            return None  # valid: nothing to do
        except jwt.ExpiredSignatureError:
            pass
        except jwt.InvalidTokenError:
            return None  # forged or malformed: the resolver refuses it
        now = time.monotonic()
        remembered = self._recent.get(token)
        if remembered is not None and remembered[0] > now:
            return remembered[1]
        result = await self._flight.do(token, lambda: self._lookup(token))
        if len(self._recent) >= _REMEMBER_MAX:
            self._recent = {k: v for k, v in self._recent.items() if v[0] > now}
            if len(self._recent) >= _REMEMBER_MAX:
                self._recent.clear()
        self._recent[token] = (now + _REMEMBER_SECONDS, result)
        return result

    async def _lookup(self, token: str) -> tuple[str, int] | None:
        try:
            claims = self.signer.verify(token, allow_expired=True)
        except jwt.InvalidTokenError:
            return None
        now = utcnow()
        idle_since = now - dt.timedelta(seconds=self.settings.session_idle_seconds)
        async with self.db.transaction() as session:
            row = (
                await session.execute(
                    select(AuthSession, User)
                    .join(User, User.id == AuthSession.user_id)
                    .where(AuthSession.id == claims["sid"])
                )
            ).one_or_none()
            if row is None:
                return None
            auth_session, user = row
            if (
                auth_session.revoked_at is not None
                or auth_session.expires_at <= now
                or auth_session.last_used_at < idle_since
                or user.disabled
                or user.id != claims["sub"]
            ):
                return None
            auth_session.last_used_at = now
            expires_at = auth_session.expires_at
        fresh, _ = self.signer.issue(
            user_id=user.id, session_id=auth_session.id, ttl=self.settings.access_token_seconds
        )
        log.info("session renewed", session_id=auth_session.id)
        return fresh, max(0, int((expires_at - now).total_seconds()))


class SlidingSessionMiddleware:
    """The edge hook (``before_admission``) that applies :class:`SessionRenewer` to the access cookie."""

    def __init__(self, app: ASGIApp, *, renewer: SessionRenewer, settings: IdentitySettings, secure: bool) -> None:
        self.app = app
        self.renewer = renewer
        self.name = settings.cookie_access.encode()
        self.settings = settings
        self.secure = secure

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            ctx: RequestContext = scope[CONTEXT_KEY]
            if ctx.authorization is None and ctx.cookie is not None:
                token = cookie_value(ctx.cookie, self.name)
                if token is not None:
                    renewed = await self.renewer.renew(token.decode("latin-1"))
                    if renewed is not None:
                        self._swap(scope, ctx, token, *renewed)
        await self.app(scope, receive, send)

    def _swap(self, scope: Scope, ctx: RequestContext, old: bytes, fresh: str, max_age: int) -> None:
        assert ctx.cookie is not None  # checked by the caller
        new_cookie = ctx.cookie.replace(self.name + b"=" + old, self.name + b"=" + fresh.encode(), 1)
        ctx.cookie = new_cookie
        scope["headers"] = [
            (name, new_cookie if name == b"cookie" else value) for name, value in scope.get("headers", ())
        ]
        cookie = Cookie(
            key=self.settings.cookie_access,
            value=fresh,
            max_age=max_age,
            path="/",
            httponly=True,
            secure=self.secure,
            samesite="lax",
            domain=self.settings.cookie_domain,
        )
        ctx.response_headers.append(cookie.to_encoded_header())
