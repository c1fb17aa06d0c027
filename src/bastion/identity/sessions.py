"""Sessions: what a sign-in issues (a short access token and a rotating refresh token), rotation with
reuse detection, revocation, and the purge of ended sessions.

    sessions = Sessions(platform.db, signer=signer, settings=settings.identity, invalidate=bus.publish)
    issued = await sessions.issue(user, "password", SessionMeta(client="203.0.113.9"))
    again = await sessions.refresh(issued.refresh_token)          # the old refresh token is spent
    await sessions.revoke_session(issued.session_id, reason="logout")
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bastion.core.db import Database
from bastion.core.text import clean_text
from bastion.identity import tokens
from bastion.identity.errors import CsrfFailed, RefreshRejected
from bastion.identity.events import Invalidate, events, log
from bastion.identity.models import AuthSession, Invite, RefreshToken, User, utcnow
from bastion.identity.schemas import UserProfile
from bastion.identity.settings import IdentitySettings
from bastion.identity.views import as_profile


@dataclass(frozen=True, slots=True)
class SessionMeta:
    """Where a sign-in came from, kept with the session for the user's own review."""

    client: str = ""
    user_agent: str | None = None


@dataclass(frozen=True, slots=True)
class IssuedSession:
    access_token: str
    access_expires_in: int
    refresh_token: str
    refresh_expires_at: dt.datetime
    csrf_token: str
    session_id: str
    user: UserProfile


class Sessions:
    def __init__(
        self, db: Database, *, signer: tokens.Signer, settings: IdentitySettings, invalidate: Invalidate
    ) -> None:
        self.db = db
        self.signer = signer
        self.access_seconds = settings.access_token_seconds
        self.refresh_seconds = settings.refresh_token_seconds
        self.invalidate = invalidate

    async def issue(self, user: User, method: str, meta: SessionMeta) -> IssuedSession:
        """A new session of ``user`` (``method``: how they signed in), with its first refresh token."""
        now = utcnow()
        session_id = secrets.token_hex(16)
        refresh = tokens.new_opaque(tokens.REFRESH_PREFIX)
        expires = now + dt.timedelta(seconds=self.refresh_seconds)
        agent = clean_text(meta.user_agent or "", multiline=False)[:256] or None
        async with self.db.transaction() as session:
            session.add(
                AuthSession(
                    id=session_id,
                    user_id=user.id,
                    method=method,
                    client=meta.client[:64] or None,
                    user_agent=agent,
                    created_at=now,
                    last_used_at=now,
                    expires_at=expires,
                )
            )
            session.add(RefreshToken(token_hash=tokens.digest(refresh), session_id=session_id, issued_at=now))
        return self._tokens_for(user, session_id, refresh, expires)

    def _tokens_for(self, user: User, session_id: str, refresh: str, expires: dt.datetime) -> IssuedSession:
        ttl = self.access_seconds
        access, _ = self.signer.issue(user_id=user.id, session_id=session_id, ttl=ttl)
        return IssuedSession(
            access_token=access,
            access_expires_in=ttl,
            refresh_token=refresh,
            refresh_expires_at=expires,
            csrf_token=self.signer.csrf_token(session_id),
            session_id=session_id,
            user=as_profile(user),
        )

    async def refresh(self, token: str, *, csrf: str | None = None) -> IssuedSession:
        """Rotate: the presented refresh token is spent and a new one issued in the same family. Presenting a
        spent token again means it was stolen (or replayed): the whole family is revoked. ``csrf`` (cookie
        mode) must be the session's CSRF token, checked before anything is spent."""
        now = utcnow()
        digest = tokens.digest(token)
        reused: str | None = None
        rotated: tuple[AuthSession, User, str] | None = None
        async with self.db.transaction() as session:
            spent = await session.execute(
                update(RefreshToken)
                .where(RefreshToken.token_hash == digest, RefreshToken.used_at.is_(None))
                .values(used_at=now)
                .returning(RefreshToken.session_id)
            )
            session_id = spent.scalar_one_or_none()
            if session_id is not None:
                rotated = await self._rotate(session, session_id, now, csrf)
            else:
                reused = await session.scalar(select(RefreshToken.session_id).where(RefreshToken.token_hash == digest))
        if rotated is None:
            if reused is not None:
                log.warning("refresh token reused; session revoked", family=reused)
                events.labels("refresh", "reuse").inc()
                await self.revoke_session(reused, reason="refresh_reuse")
            else:
                events.labels("refresh", "rejected").inc()
            raise RefreshRejected()
        auth_session, user, fresh = rotated
        events.labels("refresh", "ok").inc()
        return self._tokens_for(user, auth_session.id, fresh, auth_session.expires_at)

    async def _rotate(
        self, session: AsyncSession, session_id: str, now: dt.datetime, csrf: str | None
    ) -> tuple[AuthSession, User, str]:
        """Inside the spending transaction: check the family, then add its next refresh token. Raising here
        rolls the spend back (a failed CSRF check must not burn the cookie's token)."""
        row = (
            await session.execute(
                select(AuthSession, User).join(User, User.id == AuthSession.user_id).where(AuthSession.id == session_id)
            )
        ).one_or_none()
        if row is None or row[0].revoked_at is not None or row[0].expires_at <= now or row[1].disabled:
            events.labels("refresh", "rejected").inc()
            raise RefreshRejected()
        if csrf is not None and not self.signer.csrf_valid(session_id, csrf):
            raise CsrfFailed("The CSRF token does not match this session.")
        auth_session, user = row
        fresh = tokens.new_opaque(tokens.REFRESH_PREFIX)
        session.add(RefreshToken(token_hash=tokens.digest(fresh), session_id=session_id, issued_at=now))
        auth_session.last_used_at = now
        return auth_session, user, fresh

    async def session_of_refresh(self, token: str) -> str | None:
        async with self.db.session() as session:
            found = await session.scalar(
                select(RefreshToken.session_id).where(RefreshToken.token_hash == tokens.digest(token))
            )
        return found

    async def revoke_session(self, session_id: str, *, reason: str) -> None:
        async with self.db.transaction() as session:
            await session.execute(
                update(AuthSession)
                .where(AuthSession.id == session_id, AuthSession.revoked_at.is_(None))
                .values(revoked_at=utcnow(), revoked_reason=reason)
            )
        await self.invalidate([f"s:{session_id}"])

    async def revoke_user_sessions(self, user_id: str, *, reason: str) -> None:
        async with self.db.transaction() as session:
            await session.execute(
                update(AuthSession)
                .where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
                .values(revoked_at=utcnow(), revoked_reason=reason)
            )
        await self.invalidate([f"u:{user_id}"])

    async def purge_ended(self) -> int:
        """Delete sessions (with their refresh tokens) a day past expiry or a week past revocation, and
        expired invites. Spent refresh tokens are kept while their session lives: reuse detection needs them."""
        now = utcnow()
        ended = (AuthSession.expires_at < now - dt.timedelta(days=1)) | (
            AuthSession.revoked_at < now - dt.timedelta(days=7)
        )
        async with self.db.transaction() as session:
            await session.execute(
                delete(RefreshToken).where(RefreshToken.session_id.in_(select(AuthSession.id).where(ended)))
            )
            gone = await session.execute(delete(AuthSession).where(ended).returning(AuthSession.id))
            await session.execute(delete(Invite).where(Invite.expires_at < now - dt.timedelta(days=1)))
            return len(gone.all())
