"""Identity: accounts, sessions, API keys, OAuth sign-in and plans. Plain async Python, no HTTP types.

Other modules use the functions at the bottom of this file::

    from bastion.identity import service as identity

    user = await identity.profile(platform, principal)        # UserProfile | None
    limits = identity.plan_limits(settings, user.plan)         # PlanLimits read from settings
    await identity.set_plan(platform, user.id, "pro")          # billing; every instance sees it at once
    token = await identity.oauth_access_token(platform, user.id, "ghl")   # a provider's API token

Inside the module, :class:`IdentityService` does the work; the router calls it and the principal resolver
asks it about credentials it has not cached yet.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import hmac
import re
import secrets
import sys
import time
import types
import unicodedata
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, cast

import jwt
import msgspec
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bastion.core import metrics
from bastion.core.db import unavailable
from bastion.core.errors import AppError, DependencyUnavailable, Forbidden, ServiceUnavailable
from bastion.core.logging import get_logger
from bastion.core.passwords import Passwords
from bastion.core.principal import Principal
from bastion.core.ratelimit import Limiter, Tier
from bastion.core.resilience import CircuitBreaker
from bastion.core.stores.base import StoreUnavailable
from bastion.core.text import clean_text
from bastion.identity import tokens
from bastion.identity.bus import Bus, LocalBus, PostgresBus, RedisBus
from bastion.identity.cache import CredentialCache
from bastion.identity.errors import (
    AccountDisabled,
    ApiKeyNotFound,
    CsrfFailed,
    EmailTaken,
    InvalidAccountData,
    InvalidCredentials,
    InvalidToken,
    LoginTaken,
    OAuthAccountLinked,
    OAuthDenied,
    OAuthStateInvalid,
    PlanLimitReached,
    RefreshRejected,
    RegistrationClosed,
    ScopeNotGrantable,
    TooManyAttempts,
    UnknownProvider,
    UserNotFound,
)
from bastion.identity.models import ApiKey, AuthSession, Invite, OAuthAccount, RefreshToken, User, utcnow
from bastion.identity.oauth import OAuthProvider, ProviderTokens, ProviderUser
from bastion.identity.schemas import AdminUserView, ApiKeyOut, InviteOut, UserProfile
from bastion.identity.settings import IdentitySettings, PlanLimits

if TYPE_CHECKING:
    from bastion.core.platform import Platform
    from bastion.settings import Settings

__all__ = ["IdentityService", "UserProfile", "oauth_access_token", "plan_limits", "profile", "set_plan"]

log = get_logger("bastion.identity")
Role = Literal["owner", "admin", "user"]
_EMAIL_LOCAL = re.compile(r"^[a-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
_DOMAIN_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_LOGIN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,38}$")
_OAUTH_ERROR = re.compile(r"^[a-z_]{1,64}$")
_SCOPE = re.compile(r"^(\*|[a-z][a-z0-9_.:-]{0,63})$")
_APP = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_STATE_PREFIX = "identity:oauth:"
PURGE_SECONDS = 3600.0
_events = metrics.counter(
    "identity_events_total", "Sign-ins, refreshes and key changes, by outcome", ["event", "outcome"]
)


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


@dataclass(slots=True)
class Resolution:
    """What a credential turned out to be: a principal, or a refusal to record for the route guard."""

    principal: Principal | None
    refusal: Callable[[], AppError] | None = None
    """Makes the error to record (a fresh one per request: a cached instance must not be raised twice)."""
    tags: tuple[str, ...] = ()
    lifetime: float | None = None
    cacheable: bool = True


class OAuthState(msgspec.Struct, array_like=True):
    provider: str
    verifier: str
    redirect_uri: str
    next: str
    invite: str | None = None
    link_user_id: str | None = None


# ---------------------------------------------------------------------------------------------------------
# Validation helpers


def normalise_email(raw: str) -> str:
    """The canonical form of an address: NFC, trimmed, lower-cased, and syntactically valid.

    Hand-rolled (a pragmatic subset of RFC 5321: dot-atom local part, IDNA domain): email-validator would be
    a new dependency for a dozen lines, and its deliverability (DNS) checks do not belong on a login path.
    """
    text = unicodedata.normalize("NFC", raw).strip().lower()
    local, at, domain = text.rpartition("@")
    if not at or len(local) > 64 or not _EMAIL_LOCAL.match(local):
        raise InvalidAccountData("email", "This is not a valid email address.")
    try:
        ascii_domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        raise InvalidAccountData("email", "This is not a valid email address.") from None
    if len(ascii_domain) > 253 or not all(_DOMAIN_LABEL.match(label) for label in ascii_domain.split(".")):
        raise InvalidAccountData("email", "This is not a valid email address.")
    return f"{local}@{domain}"


def normalise_login(raw: str) -> str:
    login = raw.strip().lower()
    if not _LOGIN.match(login):
        raise InvalidAccountData(
            "login", "1-39 characters: letters, digits, '-' and '_', starting with a letter or digit."
        )
    return login


def _login_from(hint: str | None) -> str:
    """A login suggested by a provider login or an email's local part, made valid."""
    text = re.sub(r"[^a-z0-9_-]+", "-", (hint or "").lower()).strip("-_")[:39]
    return text if text and _LOGIN.match(text) else "user"


def _safe_next(value: str | None, default: str) -> str:
    """A post-sign-in redirect target: only a local path (no scheme, no ``//host``), else the default."""
    if not value or len(value) > 512 or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return default
    if any(ord(ch) < 0x20 for ch in value):
        return default
    return value


def _as_profile(user: User) -> UserProfile:
    return UserProfile(
        id=user.id,
        email=user.email,
        login=user.login,
        display_name=user.display_name,
        avatar_url=user.avatar_url,
        role=cast("Role", user.role),
        plan=user.plan,
        created_at=user.created_at,
    )


def _as_admin_view(user: User) -> AdminUserView:
    return AdminUserView(
        id=user.id,
        email=user.email,
        login=user.login,
        display_name=user.display_name,
        avatar_url=user.avatar_url,
        role=cast("Role", user.role),
        plan=user.plan,
        created_at=user.created_at,
        disabled=user.disabled,
        email_verified=user.email_verified,
        last_seen_at=user.last_seen_at,
    )


def _as_key_view(key: ApiKey) -> ApiKeyOut:
    return ApiKeyOut(
        id=key.id,
        prefix=f"{tokens.API_KEY_PREFIX}{key.id}",
        name=key.name,
        scopes=list(key.scopes),
        app=key.app,
        created_at=key.created_at,
        expires_at=key.expires_at,
        last_used_at=key.last_used_at,
    )


def owner_of(principal: Principal) -> str:
    """The user a principal acts for (a user, or the owner of an API key); service principals have none."""
    if principal.kind == "user":
        return principal.id
    user_id = principal.attrs.get("user_id") if principal.kind == "api_key" else None
    if not isinstance(user_id, str):
        raise Forbidden("This credential does not act for a user.")
    return user_id


def _unavailable(exc: BaseException) -> Resolution:
    """A lookup that failed for want of a database: recorded for the route guard (503), never cached."""
    error: AppError | None = unavailable(exc)
    if error is None:
        log.error("credential lookup failed", exc_info=exc)
        error = ServiceUnavailable("Credentials cannot be checked right now.", retry_after=5)
    found: AppError = error
    return Resolution(None, lambda: found, cacheable=False)


def _stamp(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, dt.UTC)


# ---------------------------------------------------------------------------------------------------------


class IdentityService:
    def __init__(self, platform: Platform, settings: Settings) -> None:
        self.platform = platform
        self.config: IdentitySettings = settings.identity
        self.secure_cookies = self.config.secure_cookies(settings.is_production)
        self.cors_origins = frozenset(o.rstrip("/") for o in settings.cors_origins)
        c = self.config
        self.passwords = Passwords(
            time_cost=c.argon2_time_cost,
            memory_kib=c.argon2_memory_kib,
            parallelism=c.argon2_parallelism,
            max_concurrent=c.argon2_max_concurrent,
        )
        self.signer = tokens.Signer(self._signing_keys(), issuer=c.jwt_issuer)
        self.cache = CredentialCache(ttl=c.cache_ttl_seconds, max_entries=c.cache_max_entries)
        self.bus = self._make_bus(settings)
        self.providers = {
            name: OAuthProvider(name, cfg, timeout=c.oauth_timeout_seconds) for name, cfg in c.oauth_providers.items()
        }
        self.services = {
            tokens.digest(cred.secret.get_secret_value()): Principal(
                kind="service",
                id=name,
                roles=frozenset({"service"}),
                scopes=frozenset(cred.scopes),
                attrs=types.MappingProxyType({"service": name}),
            )
            for name, cred in c.services.items()
        }
        rate = platform.limiter.tiers["auth"]
        # Per-account attempts share the platform's limiter backend (Redis when configured, so the count holds
        # across instances) but never ban: a ban keyed on an account would let anybody lock its owner out.
        self.account_limiter = Limiter(
            platform.limiter.backend,
            {"auth_account": Tier("auth_account", rate.limit, rate.window, fail_closed=True)},
            breaker=CircuitBreaker(
                "identity-account-limit",
                failure_threshold=3,
                reset_timeout=2.0,
                is_failure=lambda exc: isinstance(exc, StoreUnavailable),
            ),
        )
        self._touched_keys: dict[str, float] = {}
        self._seen_users: dict[str, float] = {}
        self.bootstrap: asyncio.Task[None] | None = None
        """The first-run owner creation, running in the background after start-up (None when off)."""

    # -- wiring ------------------------------------------------------------------------------------------

    def _signing_keys(self) -> list[bytes]:
        if self.config.jwt_secret is not None:
            return [s.get_secret_value().encode() for s in [self.config.jwt_secret, *self.config.jwt_previous_secrets]]
        keyring = self.platform.keyring
        return tokens.derive_keys(keyring.keys, keyring.active)

    def _make_bus(self, settings: Settings) -> Bus:
        if settings.redis_url is not None and self.platform.redis is not None:
            return RedisBus(
                self.cache.invalidate,
                self.cache.clear,
                url=settings.redis_url.get_secret_value(),
                channel=settings.redis_prefix + "identity:invalidate",
                publisher=self.platform.redis,
            )
        if self.platform.db.dialect == "postgresql":
            from sqlalchemy.engine import make_url

            dsn = make_url(settings.resolved_database_url).set(drivername="postgresql")
            return PostgresBus(
                self.cache.invalidate,
                self.cache.clear,
                dsn=dsn.render_as_string(hide_password=False),
                channel="bastion_identity",
                engine=self.platform.db.engine,
            )
        return LocalBus(self.cache.invalidate, self.cache.clear)

    async def start(self) -> None:
        """Subscribe to revocations, start the batched writes and the hourly purge, and (on an empty
        database) the first-run owner bootstrap. The CLI does not call it: it only publishes."""
        await self.bus.start()
        self.platform.lifecycle.spawn(self._maintain_forever(), "identity-maintenance")
        if self.config.bootstrap_owner:
            self.bootstrap = self.platform.lifecycle.spawn(self._bootstrap(), "identity-bootstrap")

    async def close(self) -> None:
        await self.flush_touches()
        await self.bus.close()
        for provider in self.providers.values():
            await provider.close()

    async def invalidate(self, tags: Sequence[str]) -> None:
        """Drop cached credentials carrying ``tags`` here and on every other instance."""
        await self.bus.publish(tags)

    # -- accounts ----------------------------------------------------------------------------------------

    def check_password(self, password: str, email: str | None = None) -> None:
        if len(password) < self.config.password_min_length:
            raise InvalidAccountData("password", f"Use at least {self.config.password_min_length} characters.")
        if email is not None and password.strip().lower() == email:
            raise InvalidAccountData("password", "The password must not be the email address.")

    async def create_user(
        self,
        *,
        email: str,
        password: str | None = None,
        login: str | None = None,
        display_name: str | None = None,
        role: Role = "user",
        plan: str = "free",
        email_verified: bool = False,
        avatar_url: str | None = None,
        invite: str | None = None,
    ) -> User:
        """A new account; ``invite`` is claimed in the same transaction (a failed insert leaves it unused)."""
        address = normalise_email(email)
        if password is not None:
            self.check_password(password, address)
        chosen = normalise_login(login) if login else None
        hashed = await self.passwords.hash(password) if password is not None else None
        name = clean_text(display_name or "", multiline=False).strip()[:128]
        for attempt in range(5):
            candidate = chosen or _login_from(address.partition("@")[0])
            if chosen is None and attempt:
                candidate = f"{candidate[:34]}-{secrets.token_hex(2)}"
            user = User(
                id=secrets.token_hex(16),
                email=address,
                email_verified=email_verified,
                login=candidate,
                display_name=name or candidate,
                avatar_url=avatar_url[:512] if avatar_url else None,
                password_hash=hashed,
                role=role,
                plan=plan,
                disabled=False,
                created_at=utcnow(),
            )
            try:
                async with self.platform.db.transaction() as session:
                    if invite is not None:
                        user.role = await self._claim_invite(session, invite, address, user.id)
                    session.add(user)
                return user
            except IntegrityError:
                if await self._email_exists(address):
                    raise EmailTaken("An account with this email already exists.") from None
                if chosen is not None:
                    raise LoginTaken("This login is taken; choose another.") from None
        raise LoginTaken("No free login could be found; choose one.")

    async def _email_exists(self, address: str) -> bool:
        async with self.platform.db.session() as session:
            return await session.scalar(select(User.id).where(User.email == address)) is not None

    async def _claim_invite(self, session: AsyncSession, invite: str, address: str, user_id: str) -> Role:
        now = utcnow()
        claimed = await session.execute(
            update(Invite)
            .where(Invite.token_hash == tokens.digest(invite), Invite.used_at.is_(None), Invite.expires_at > now)
            .values(used_at=now, used_by=user_id)
            .returning(Invite.role, Invite.email)
        )
        row = claimed.one_or_none()
        if row is None or (row.email is not None and row.email != address):
            raise InvalidAccountData(
                "invite", "This invite is not valid (unknown, used, expired or for another address)."
            )
        return cast("Role", row.role)

    async def register(
        self,
        *,
        email: str,
        password: str,
        login: str | None,
        display_name: str | None,
        invite: str | None,
        meta: SessionMeta,
    ) -> IssuedSession:
        mode = self.config.registration
        if mode == "closed":
            raise RegistrationClosed("Accounts are created by an administrator here.")
        if mode == "invite" and not invite:
            raise RegistrationClosed("Registration needs an invite.")
        user = await self.create_user(
            email=email, password=password, login=login, display_name=display_name, invite=invite
        )
        log.info("account registered", user_id=user.id)
        return await self._issue(user, "password", meta)

    async def login(self, *, email: str, password: str, meta: SessionMeta) -> IssuedSession:
        """A password sign-in. Every failure (unknown account, wrong password, disabled account, malformed
        address) is the same 401 after the same work: one limiter hit and one argon2 verification."""
        try:
            address = normalise_email(email)
        except InvalidAccountData:
            address = unicodedata.normalize("NFC", email).strip().lower()
        try:
            await self._hit_account_limit(address)
        except TooManyAttempts:
            _events.labels("login", "limited").inc()
            raise
        async with self.platform.db.session() as session:
            user = await session.scalar(select(User).where(User.email == address))
        stored = user.password_hash if user is not None else None
        if not await self.passwords.verify(stored, password) or user is None or user.disabled:
            log.info("sign-in failed")  # never why: the log must not tell an unknown account from a wrong password
            _events.labels("login", "failed").inc()
            raise InvalidCredentials()
        _events.labels("login", "ok").inc()
        if stored is not None and self.passwords.needs_rehash(stored):
            await self._set_password_hash(user.id, await self.passwords.hash(password))
        return await self._issue(user, "password", meta)

    async def _hit_account_limit(self, address: str) -> None:
        verdict = await self.account_limiter.check("auth_account", "acct:" + tokens.digest(address)[:32])
        if verdict.decision is None:
            raise DependencyUnavailable("Sign-in is unavailable for a moment.", retry_after=5)
        if not verdict.decision.allowed:
            raise TooManyAttempts(
                "Too many sign-in attempts for this account; wait a moment.", retry_after=verdict.decision.retry_after
            )

    async def _set_password_hash(self, user_id: str, hashed: str) -> None:
        async with self.platform.db.transaction() as session:
            await session.execute(update(User).where(User.id == user_id).values(password_hash=hashed))

    async def set_password(self, user_id: str, password: str) -> None:
        """A new password; every session of the user ends (here and on every instance)."""
        user = await self.get_user(user_id)
        self.check_password(password, user.email)
        await self._set_password_hash(user_id, await self.passwords.hash(password))
        await self.revoke_user_sessions(user_id, reason="password")

    async def change_password(self, user_id: str, current: str, new: str) -> None:
        user = await self.get_user(user_id)
        if not await self.passwords.verify(user.password_hash, current):
            raise InvalidCredentials()
        await self.set_password(user_id, new)

    async def get_user(self, user_id: str) -> User:
        async with self.platform.db.session() as session:
            user = await session.get(User, user_id)
        if user is None:
            raise UserNotFound("No such user.")
        return user

    async def find_user(self, email_or_id: str) -> User:
        """By email (as typed) or id: for the command line."""
        async with self.platform.db.session() as session:
            user = await session.get(User, email_or_id)
            if user is None and "@" in email_or_id:
                user = await session.scalar(select(User).where(User.email == normalise_email(email_or_id)))
        if user is None:
            raise UserNotFound(f"No user {email_or_id!r}.")
        return user

    async def list_users(self, *, limit: int = 100, offset: int = 0) -> list[AdminUserView]:
        async with self.platform.db.session() as session:
            rows = await session.scalars(select(User).order_by(User.created_at, User.id).limit(limit).offset(offset))
            return [_as_admin_view(u) for u in rows]

    async def update_user(
        self,
        actor: Principal | None,
        user_id: str,
        *,
        role: Role | None = None,
        plan: str | None = None,
        disabled: bool | None = None,
    ) -> AdminUserView:
        """Role (owner only), plan and disabled (owner or admin). The owner cannot be demoted or disabled,
        and an admin cannot change another admin. ``actor=None`` is the command line (the operator)."""
        target = await self.get_user(user_id)
        if actor is not None:
            if role is not None and not actor.has_role("owner"):
                raise Forbidden("Only the owner changes roles.")
            if target.role == "owner" or (target.role == "admin" and not actor.has_role("owner")):
                raise Forbidden("You cannot change this account.")
        if target.role == "owner" and (role not in (None, "owner") or disabled):
            raise Forbidden("The owner account cannot be demoted or disabled.")
        if plan is not None and plan not in ("free", "pro"):
            raise InvalidAccountData("plan", "Unknown plan.")
        values: dict[str, Any] = {
            k: v for k, v in {"role": role, "plan": plan, "disabled": disabled}.items() if v is not None
        }
        if values:
            async with self.platform.db.transaction() as session:
                await session.execute(update(User).where(User.id == user_id).values(**values))
            await self.invalidate([f"u:{user_id}"])
            log.info("account updated", user_id=user_id, fields=sorted(values))
        return _as_admin_view(await self.get_user(user_id))

    async def set_plan(self, user_id: str, plan: str) -> None:
        await self.update_user(None, user_id, plan=plan)

    async def create_invite(self, actor_id: str | None, *, email: str | None, role: Role, days: int) -> InviteOut:
        token = tokens.new_opaque(tokens.INVITE_PREFIX)
        address = normalise_email(email) if email else None
        expires = utcnow() + dt.timedelta(days=days)
        async with self.platform.db.transaction() as session:
            session.add(
                Invite(
                    token_hash=tokens.digest(token),
                    email=address,
                    role=role,
                    created_by=actor_id,
                    created_at=utcnow(),
                    expires_at=expires,
                )
            )
        return InviteOut(token=token, email=address, role=role, expires_at=expires)

    async def ensure_owner(self, email: str | None = None) -> tuple[User, str] | None:
        """On an empty database: the owner account and its generated password; else None. Safe when several
        workers start at once (the unique email lets one of them win)."""
        async with self.platform.db.session() as session:
            if await session.scalar(select(func.count()).select_from(User)):
                return None
        password = secrets.token_urlsafe(18)
        try:
            user = await self.create_user(
                email=email or self.config.owner_email,
                password=password,
                login="owner",
                display_name="Owner",
                role="owner",
                email_verified=True,
            )
        except (EmailTaken, LoginTaken):
            return None
        return user, password

    async def _bootstrap(self) -> None:
        try:
            created = await self.ensure_owner()
        except Exception as exc:  # a database that is down or not migrated must not stop the worker
            log.warning(
                "owner bootstrap skipped; run `bastion migrate`, then `bastion users create-owner`",
                error=type(exc).__name__,
            )
            return
        if created is not None:
            user, password = created
            print_credential(user.email, password)
            log.info("owner account created", user_id=user.id)

    # -- sessions ----------------------------------------------------------------------------------------

    async def _issue(self, user: User, method: str, meta: SessionMeta) -> IssuedSession:
        now = utcnow()
        session_id = secrets.token_hex(16)
        refresh = tokens.new_opaque(tokens.REFRESH_PREFIX)
        expires = now + dt.timedelta(seconds=self.config.refresh_token_seconds)
        agent = clean_text(meta.user_agent or "", multiline=False)[:256] or None
        async with self.platform.db.transaction() as session:
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
        ttl = self.config.access_token_seconds
        access, _ = self.signer.issue(user_id=user.id, session_id=session_id, ttl=ttl)
        return IssuedSession(
            access_token=access,
            access_expires_in=ttl,
            refresh_token=refresh,
            refresh_expires_at=expires,
            csrf_token=self.signer.csrf_token(session_id),
            session_id=session_id,
            user=_as_profile(user),
        )

    async def refresh(self, token: str, *, csrf: str | None = None) -> IssuedSession:
        """Rotate: the presented refresh token is spent and a new one issued in the same family. Presenting a
        spent token again means it was stolen (or replayed): the whole family is revoked. ``csrf`` (cookie
        mode) must be the session's CSRF token, checked before anything is spent."""
        now = utcnow()
        digest = tokens.digest(token)
        reused: str | None = None
        rotated: tuple[AuthSession, User, str] | None = None
        async with self.platform.db.transaction() as session:
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
                _events.labels("refresh", "reuse").inc()
                await self.revoke_session(reused, reason="refresh_reuse")
            else:
                _events.labels("refresh", "rejected").inc()
            raise RefreshRejected()
        auth_session, user, fresh = rotated
        _events.labels("refresh", "ok").inc()
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
            _events.labels("refresh", "rejected").inc()
            raise RefreshRejected()
        if csrf is not None and not self.signer.csrf_valid(session_id, csrf):
            raise CsrfFailed("The CSRF token does not match this session.")
        auth_session, user = row
        fresh = tokens.new_opaque(tokens.REFRESH_PREFIX)
        session.add(RefreshToken(token_hash=tokens.digest(fresh), session_id=session_id, issued_at=now))
        auth_session.last_used_at = now
        return auth_session, user, fresh

    async def session_of_refresh(self, token: str) -> str | None:
        async with self.platform.db.session() as session:
            found = await session.scalar(
                select(RefreshToken.session_id).where(RefreshToken.token_hash == tokens.digest(token))
            )
        return found

    async def revoke_session(self, session_id: str, *, reason: str) -> None:
        async with self.platform.db.transaction() as session:
            await session.execute(
                update(AuthSession)
                .where(AuthSession.id == session_id, AuthSession.revoked_at.is_(None))
                .values(revoked_at=utcnow(), revoked_reason=reason)
            )
        await self.invalidate([f"s:{session_id}"])

    async def revoke_user_sessions(self, user_id: str, *, reason: str) -> None:
        async with self.platform.db.transaction() as session:
            await session.execute(
                update(AuthSession)
                .where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
                .values(revoked_at=utcnow(), revoked_reason=reason)
            )
        await self.invalidate([f"u:{user_id}"])

    # -- CSRF (cookie mode) -------------------------------------------------------------------------------

    def origin_allowed(self, origin: bytes, host: bytes) -> bool:
        """The ``Origin`` is this site (its host:port is the request's ``Host``) or a configured CORS origin."""
        text = origin.decode("latin-1").rstrip("/")
        if text in self.cors_origins:
            return True
        _, sep, netloc = text.partition("://")
        return bool(sep) and netloc.lower() == host.decode("latin-1").lower()

    def csrf_problem(self, sent: bytes | None, stored: bytes | None, session_id: str) -> str | None:
        """Why the CSRF header fails (missing, not the cookie's value, not this session's), or None."""
        if sent is None or stored is None:
            return (
                f"Send the CSRF token (the {self.config.cookie_csrf} cookie) in the {self.config.csrf_header} header."
            )
        if not hmac.compare_digest(sent, stored) or not self.signer.csrf_valid(session_id, sent.decode("latin-1")):
            return "The CSRF token does not match this session."
        return None

    # -- API keys ----------------------------------------------------------------------------------------

    async def create_api_key(
        self,
        principal: Principal,
        *,
        name: str,
        scopes: Sequence[str] = ("*",),
        app: str | None = None,
        expires_in_days: int | None = None,
    ) -> tuple[ApiKeyOut, str]:
        """A new key for the caller's user. A key cannot grant a scope its creator lacks, and the plan caps
        how many live keys a user holds (owner and admins are exempt)."""
        user_id = owner_of(principal)
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
        user = await self.get_user(user_id)
        now = utcnow()
        async with self.platform.db.transaction() as session:
            live = await session.scalar(
                select(func.count())
                .select_from(ApiKey)
                .where(
                    ApiKey.user_id == user_id,
                    ApiKey.revoked_at.is_(None),
                    (ApiKey.expires_at.is_(None)) | (ApiKey.expires_at > now),
                )
            )
            cap = plan_limits(self.config, user.plan).api_keys
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
        log.info("api key created", key_id=key_id, user_id=user_id)
        _events.labels("api_key", "created").inc()
        return _as_key_view(key), token

    async def list_api_keys(self, user_id: str) -> list[ApiKeyOut]:
        async with self.platform.db.session() as session:
            rows = await session.scalars(
                select(ApiKey)
                .where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
                .order_by(ApiKey.created_at, ApiKey.id)
            )
            return [_as_key_view(k) for k in rows]

    async def revoke_api_key(self, key_id: str, *, actor: Principal | None) -> None:
        """Revoke a key of the caller's (any key for the owner, an admin, or ``actor=None``: the CLI). Takes
        effect on every instance before this returns (see bus.py)."""
        async with self.platform.db.transaction() as session:
            query = update(ApiKey).where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
            if actor is not None and not actor.has_role("owner", "admin"):
                query = query.where(ApiKey.user_id == owner_of(actor))
            done = await session.execute(query.values(revoked_at=utcnow()).returning(ApiKey.id))
            if done.scalar_one_or_none() is None:
                raise ApiKeyNotFound("No such API key.")
        await self.invalidate([f"k:{key_id}"])
        log.info("api key revoked", key_id=key_id)
        _events.labels("api_key", "revoked").inc()

    # -- resolving credentials (called by the resolver on a cache miss) ----------------------------------

    async def resolve_api_key(self, token: str) -> Resolution:
        key_id = tokens.parse_api_key(token)
        refusal = functools.partial(InvalidToken, "The API key is invalid, expired or revoked.")
        if key_id is None:
            return Resolution(None, refusal)
        try:
            async with self.platform.db.session() as session:
                row = (
                    await session.execute(
                        select(ApiKey, User).join(User, User.id == ApiKey.user_id).where(ApiKey.id == key_id)
                    )
                ).one_or_none()
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
        )
        lifetime = (key.expires_at - now).total_seconds() if key.expires_at is not None else None
        return Resolution(principal, tags=tags, lifetime=lifetime)

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
            async with self.platform.db.session() as session:
                row = (
                    await session.execute(
                        select(AuthSession, User)
                        .join(User, User.id == AuthSession.user_id)
                        .where(AuthSession.id == session_id)
                    )
                ).one_or_none()
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

    # -- last used / last seen, batched ------------------------------------------------------------------

    def touch(self, principal: Principal, now: float) -> None:
        """Record use (a dict write); written to the database every ``touch_interval_seconds``."""
        if principal.kind == "api_key":
            self._touched_keys[principal.id] = now
        elif principal.kind == "user":
            self._seen_users[principal.id] = now

    async def flush_touches(self) -> None:
        keys, self._touched_keys = self._touched_keys, {}
        users, self._seen_users = self._seen_users, {}
        if not keys and not users:
            return
        try:
            async with self.platform.db.transaction() as session:
                if keys:  # ORM bulk UPDATE by primary key: one executemany per table
                    await session.execute(
                        update(ApiKey), [{"id": k, "last_used_at": _stamp(t)} for k, t in keys.items()]
                    )
                if users:
                    await session.execute(
                        update(User), [{"id": u, "last_seen_at": _stamp(t)} for u, t in users.items()]
                    )
        except Exception as exc:  # last-used times are advisory: a failed batch is dropped, not retried forever
            log.warning("last-used times not written", error=type(exc).__name__, keys=len(keys), users=len(users))

    async def purge_expired(self) -> int:
        """Delete sessions (with their refresh tokens) a day past expiry or a week past revocation, and
        expired invites. Spent refresh tokens are kept while their session lives: reuse detection needs them."""
        now = utcnow()
        ended = (AuthSession.expires_at < now - dt.timedelta(days=1)) | (
            AuthSession.revoked_at < now - dt.timedelta(days=7)
        )
        async with self.platform.db.transaction() as session:
            await session.execute(
                delete(RefreshToken).where(RefreshToken.session_id.in_(select(AuthSession.id).where(ended)))
            )
            gone = await session.execute(delete(AuthSession).where(ended).returning(AuthSession.id))
            await session.execute(delete(Invite).where(Invite.expires_at < now - dt.timedelta(days=1)))
            return len(gone.all())

    async def _maintain_forever(self) -> None:
        """Write last-used times every ``touch_interval_seconds``; purge ended sessions every hour."""
        next_purge = time.monotonic() + 60.0
        while True:
            await asyncio.sleep(self.config.touch_interval_seconds)
            await self.flush_touches()
            if time.monotonic() >= next_purge:
                next_purge = time.monotonic() + PURGE_SECONDS
                try:
                    await self.purge_expired()
                except Exception as exc:  # a later round tries again
                    log.warning("purge of ended sessions failed", error=type(exc).__name__)

    # -- OAuth -------------------------------------------------------------------------------------------

    def provider(self, name: str) -> OAuthProvider:
        found = self.providers.get(name)
        if found is None:
            raise UnknownProvider(f"Sign-in with {name!r} is not configured.")
        return found

    async def oauth_begin(
        self, name: str, *, redirect_uri: str, next_path: str | None, invite: str | None, link_user_id: str | None
    ) -> tuple[str, str]:
        """The provider's authorization URL and the state (to bind to this browser in a cookie). The PKCE
        verifier stays server-side in the fast store, under the state's digest, for ``oauth_state_seconds``."""
        provider = self.provider(name)
        state, verifier = secrets.token_urlsafe(32), secrets.token_urlsafe(64)
        record = OAuthState(
            provider=name,
            verifier=verifier,
            redirect_uri=redirect_uri,
            next=_safe_next(next_path, self.config.login_redirect),
            invite=invite,
            link_user_id=link_user_id,
        )
        try:
            await self.platform.store.set(
                _STATE_PREFIX + tokens.digest(state),
                msgspec.msgpack.encode(record),
                ttl=self.config.oauth_state_seconds,
            )
        except StoreUnavailable as exc:
            raise DependencyUnavailable("Sign-in is unavailable for a moment.", retry_after=5) from exc
        return provider.authorization_url(redirect_uri, state=state, verifier=verifier), state

    async def oauth_complete(
        self,
        name: str,
        *,
        state: str | None,
        bound_state: str | None,
        code: str | None,
        error: str | None,
        meta: SessionMeta,
    ) -> tuple[IssuedSession, str]:
        """Check the state (present, bound to this browser, unused, for this provider), exchange the code,
        then sign in the linked account, link to the signed-in one, or create one. Returns the session and
        where to send the browser."""
        provider = self.provider(name)
        if not state or not bound_state or not hmac.compare_digest(state.encode(), bound_state.encode()):
            raise OAuthStateInvalid("The sign-in was not started from this browser; start again.")
        try:
            raw = await self.platform.store.get_and_delete(_STATE_PREFIX + tokens.digest(state))
        except StoreUnavailable as exc:
            raise DependencyUnavailable("Sign-in is unavailable for a moment.", retry_after=5) from exc
        record = msgspec.msgpack.decode(raw, type=OAuthState) if raw is not None else None
        if record is None or record.provider != name:
            raise OAuthStateInvalid("This sign-in attempt expired or was already used; start again.")
        if error is not None:
            reason = error if _OAUTH_ERROR.match(error) else "error"
            raise OAuthDenied(f"{name} did not grant access ({reason}).", extra={"provider_error": reason})
        if not code:
            raise OAuthStateInvalid("The provider sent no authorization code.")
        provider_tokens, info = await provider.complete(
            code[:2048], verifier=record.verifier, redirect_uri=record.redirect_uri
        )
        user = await self._link_or_create(name, info, provider_tokens, record)
        log.info("oauth sign-in", provider=name, user_id=user.id)
        _events.labels("oauth", "ok").inc()
        return await self._issue(user, f"oauth:{name}", meta), record.next

    async def _link_or_create(
        self, name: str, info: ProviderUser, provider_tokens: ProviderTokens, record: OAuthState
    ) -> User:
        async with self.platform.db.session() as session:
            account = await session.scalar(
                select(OAuthAccount).where(OAuthAccount.provider == name, OAuthAccount.subject == info.subject[:255])
            )
        if account is not None:
            if record.link_user_id is not None and account.user_id != record.link_user_id:
                raise OAuthAccountLinked(f"This {name} account is linked to another user.")
            user = await self.get_user(account.user_id)
        elif record.link_user_id is not None:
            user = await self.get_user(record.link_user_id)
        else:
            user = await self._user_for_new_account(name, info, record.invite)
        if user.disabled:
            raise AccountDisabled("This account is disabled.")
        await self._store_account(account, user.id, name, info, provider_tokens)
        return user

    async def _user_for_new_account(self, name: str, info: ProviderUser, invite: str | None) -> User:
        if info.email is None:
            raise InvalidAccountData("email", f"{name} did not share an email address; allow it and retry.")
        address = normalise_email(info.email)
        async with self.platform.db.session() as session:
            existing = await session.scalar(select(User).where(User.email == address))
        if existing is not None:
            # Link by email only when both sides verified the address: else a password account made by an
            # attacker for the victim's address would capture the victim's provider sign-in.
            if info.email_verified and existing.email_verified:
                return existing
            raise EmailTaken("An account with this email exists; sign in to it, then link this provider.")
        if self.config.registration == "closed" or (self.config.registration == "invite" and not invite):
            raise RegistrationClosed("No account is linked to this sign-in, and registration is not open.")
        return await self.create_user(
            email=address,
            login=_login_from(info.login or address.partition("@")[0]),
            display_name=info.name,
            email_verified=info.email_verified,
            avatar_url=info.avatar_url,
            invite=invite,
        )

    async def _store_account(
        self, account: OAuthAccount | None, user_id: str, name: str, info: ProviderUser, provider_tokens: ProviderTokens
    ) -> None:
        keyring = self.platform.keyring
        now = utcnow()
        async with self.platform.db.transaction() as session:
            if account is None:
                account = OAuthAccount(
                    id=secrets.token_hex(16), user_id=user_id, provider=name, subject=info.subject[:255], created_at=now
                )
                session.add(account)
            else:
                account = await session.merge(account)
            account.email = info.email[:254] if info.email else None
            account.access_token = keyring.encrypt(
                provider_tokens.access_token.encode(), context=token_context(account.id, "access")
            )
            account.refresh_token = (
                keyring.encrypt(provider_tokens.refresh_token.encode(), context=token_context(account.id, "refresh"))
                if provider_tokens.refresh_token
                else None
            )
            account.token_expires_at = provider_tokens.expires_at
            account.scope = provider_tokens.scope
            account.updated_at = now


def token_context(account_id: str, which: str) -> bytes:
    """AEAD context of a stored provider token: a ciphertext moved to another row or field fails to decrypt."""
    return f"identity:oauth:{account_id}:{which}".encode()


def print_credential(email: str, password: str) -> None:
    """Show a generated credential once, on stderr, never in the structured log (which is shipped and kept)."""
    sys.stderr.write(
        "\n=== Bastion owner account created ===\n"
        f"  email:    {email}\n"
        f"  password: {password}\n"
        "Shown once. Sign in with POST /auth/login, then change it (or `bastion users reset-password`).\n\n"
    )
    sys.stderr.flush()


# ---------------------------------------------------------------------------------------------------------
# For other modules


def plan_limits(settings: Settings | IdentitySettings, plan: str) -> PlanLimits:
    """The limits of ``plan`` as configured (``BASTION_IDENTITY__PLANS__<PLAN>__<LIMIT>``); an unknown plan
    gets the free plan's."""
    config = settings if isinstance(settings, IdentitySettings) else settings.identity
    found: PlanLimits = getattr(config.plans, plan, None) or config.plans.free
    return found


async def profile(platform: Platform, principal: Principal | None) -> UserProfile | None:
    """The current user's profile: the user itself, or the owner of an API key. None when anonymous, for a
    service principal, or when the user is gone or disabled."""
    if principal is None or principal.kind == "service":
        return None
    user_id = principal.id if principal.kind == "user" else principal.attrs.get("user_id")
    if not isinstance(user_id, str):
        return None
    async with platform.db.session() as session:
        user = await session.get(User, user_id)
    return None if user is None or user.disabled else _as_profile(user)


async def set_plan(platform: Platform, user_id: str, plan: Literal["free", "pro"]) -> None:
    """Change a user's plan (billing calls it); cached principals everywhere pick it up at once."""
    await instance(platform).set_plan(user_id, plan)


async def oauth_access_token(platform: Platform, user_id: str, provider: str) -> str | None:
    """The user's stored access token at ``provider`` (decrypted), for calling its API on their behalf."""
    async with platform.db.session() as session:
        account = await session.scalar(
            select(OAuthAccount)
            .where(OAuthAccount.user_id == user_id, OAuthAccount.provider == provider)
            .order_by(OAuthAccount.updated_at.desc())
            .limit(1)
        )
    if account is None or account.access_token is None:
        return None
    return platform.keyring.decrypt(account.access_token, context=token_context(account.id, "access")).decode()


_services: weakref.WeakKeyDictionary[Platform, IdentityService] = weakref.WeakKeyDictionary()


def register(platform: Platform, service: IdentityService) -> None:
    """Make ``service`` reachable from the module-level functions above (done by the module's build)."""
    _services[platform] = service


def instance(platform: Platform) -> IdentityService:
    """The identity service of the app ``platform`` belongs to."""
    service = _services.get(platform)
    if service is None:
        raise RuntimeError("the identity module is not part of this app")
    return service
