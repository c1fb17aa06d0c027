"""Signing in: registration, password sign-in (limited per account), and OAuth sign-in, each ending in a
new session.

    signin = SignIn(platform.db, store=platform.store, keyring=platform.keyring, accounts=accounts,
                    sessions=sessions, passwords=passwords, account_limiter=limiter, providers=providers,
                    settings=settings.identity)
    issued = await signin.login(email="ada@example.com", password="…", meta=SessionMeta(client=ip))
    url, state = await signin.oauth_begin("github", redirect_uri=…, next_path="/", invite=None, link_user_id=None)
    issued, next_path = await signin.oauth_complete("github", state=…, bound_state=…, code=…, error=None, meta=…)

OAuth: the state is bound to the browser (a cookie the router sets), the PKCE verifier stays server-side in
the fast store for ``oauth_state_seconds``, and the provider's tokens are stored encrypted
(:func:`token_context` binds each ciphertext to its row and field).
"""

from __future__ import annotations

import hmac
import re
import secrets
from collections.abc import Awaitable, Callable, Mapping

import msgspec
from sqlalchemy import select

from bastion.core.crypto import Keyring
from bastion.core.db import Database
from bastion.core.errors import DependencyUnavailable
from bastion.core.passwords import Passwords
from bastion.core.ratelimit import Limiter
from bastion.core.stores.base import Store, StoreUnavailable
from bastion.identity import tokens
from bastion.identity.accounts import Accounts
from bastion.identity.errors import (
    AccountDisabled,
    EmailTaken,
    InvalidAccountData,
    InvalidCredentials,
    OAuthAccountLinked,
    OAuthDenied,
    OAuthStateInvalid,
    RegistrationClosed,
    TooManyAttempts,
    UnknownProvider,
)
from bastion.identity.events import events, log
from bastion.identity.models import OAuthAccount, User, utcnow
from bastion.identity.oauth import OAuthProvider, ProviderTokens, ProviderUser
from bastion.identity.sessions import IssuedSession, SessionMeta, Sessions
from bastion.identity.settings import IdentitySettings
from bastion.identity.validation import login_from, loose_email, normalise_email, safe_next

ACCOUNT_TIER = "auth_account"
"""The limiter tier of per-account sign-in attempts (the ``auth`` tier's rate, keyed on the address)."""
_OAUTH_ERROR = re.compile(r"^[a-z_]{1,64}$")
_STATE_PREFIX = "identity:oauth:"


class OAuthState(msgspec.Struct, array_like=True):
    provider: str
    verifier: str
    redirect_uri: str
    next: str
    invite: str | None = None
    link_user_id: str | None = None


OAuthHook = Callable[[str, ProviderTokens], Awaitable[None]]
"""``hook(user_id, tokens)`` after a sign-in with a provider (see :meth:`Identity.on_oauth_signin`)."""


def token_context(account_id: str, which: str) -> bytes:
    """AEAD context of a stored provider token: a ciphertext moved to another row or field fails to decrypt."""
    return f"identity:oauth:{account_id}:{which}".encode()


class SignIn:
    def __init__(
        self,
        db: Database,
        *,
        store: Store,
        keyring: Keyring,
        accounts: Accounts,
        sessions: Sessions,
        passwords: Passwords,
        account_limiter: Limiter,
        providers: Mapping[str, OAuthProvider],
        settings: IdentitySettings,
    ) -> None:
        self.db = db
        self.store = store
        self.keyring = keyring
        self.accounts = accounts
        self.sessions = sessions
        self.passwords = passwords
        self.account_limiter = account_limiter
        self.providers = providers
        self.settings = settings
        self.hooks: dict[str, list[OAuthHook]] = {}
        """Called after each sign-in with a provider, with the user and the provider's tokens (a module that
        keeps a provider's tokens itself registers here through :meth:`Identity.on_oauth_signin`)."""

    # -- passwords ---------------------------------------------------------------------------------------

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
        mode = self.settings.registration
        if mode == "closed":
            raise RegistrationClosed("Accounts are created by an administrator here.")
        if mode == "invite" and not invite:
            raise RegistrationClosed("Registration needs an invite.")
        user = await self.accounts.create_user(
            email=email, password=password, login=login, display_name=display_name, invite=invite
        )
        log.info("account registered", user_id=user.id)
        return await self.sessions.issue(user, "password", meta)

    async def login(self, *, email: str, password: str, meta: SessionMeta) -> IssuedSession:
        """A password sign-in. Every failure (unknown account, wrong password, disabled account, malformed
        address) is the same 401 after the same work: one limiter hit and one argon2 verification."""
        address = loose_email(email)
        try:
            await self._hit_account_limit(address)
        except TooManyAttempts:
            events.labels("login", "limited").inc()
            raise
        async with self.db.session() as session:
            user = await session.scalar(select(User).where(User.email == address))
        passwords = self.passwords
        stored = user.password_hash if user is not None else None
        if not await passwords.verify(stored, password) or user is None or user.disabled:
            log.info("sign-in failed")  # never why: the log must not tell an unknown account from a wrong password
            events.labels("login", "failed").inc()
            raise InvalidCredentials()
        events.labels("login", "ok").inc()
        if stored is not None and passwords.needs_rehash(stored):
            await self.accounts.set_password_hash(user.id, await passwords.hash(password))
        return await self.sessions.issue(user, "password", meta)

    async def _hit_account_limit(self, address: str) -> None:
        verdict = await self.account_limiter.check(ACCOUNT_TIER, "acct:" + tokens.digest(address)[:32])
        if verdict.decision is None:
            raise DependencyUnavailable("Sign-in is unavailable for a moment.", retry_after=5)
        if not verdict.decision.allowed:
            raise TooManyAttempts(
                "Too many sign-in attempts for this account; wait a moment.", retry_after=verdict.decision.retry_after
            )

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
            next=safe_next(next_path, self.settings.login_redirect),
            invite=invite,
            link_user_id=link_user_id,
        )
        try:
            await self.store.set(
                _STATE_PREFIX + tokens.digest(state),
                msgspec.msgpack.encode(record),
                ttl=self.settings.oauth_state_seconds,
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
            raw = await self.store.get_and_delete(_STATE_PREFIX + tokens.digest(state))
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
        for hook in self.hooks.get(name, ()):
            await hook(user.id, provider_tokens)
        log.info("oauth sign-in", provider=name, user_id=user.id)
        events.labels("oauth", "ok").inc()
        return await self.sessions.issue(user, f"oauth:{name}", meta), record.next

    async def _link_or_create(
        self, name: str, info: ProviderUser, provider_tokens: ProviderTokens, record: OAuthState
    ) -> User:
        async with self.db.session() as session:
            account = await session.scalar(
                select(OAuthAccount).where(OAuthAccount.provider == name, OAuthAccount.subject == info.subject[:255])
            )
        if account is not None:
            if record.link_user_id is not None and account.user_id != record.link_user_id:
                raise OAuthAccountLinked(f"This {name} account is linked to another user.")
            user = await self.accounts.get_user(account.user_id)
        elif record.link_user_id is not None:
            user = await self.accounts.get_user(record.link_user_id)
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
        async with self.db.session() as session:
            existing = await session.scalar(select(User).where(User.email == address))
        if existing is not None:
            # Link by email only when both sides verified the address: else a password account made by an
            # attacker for the victim's address would capture the victim's provider sign-in.
            if info.email_verified and existing.email_verified:
                return existing
            raise EmailTaken("An account with this email exists; sign in to it, then link this provider.")
        if self.settings.registration == "closed" or (self.settings.registration == "invite" and not invite):
            raise RegistrationClosed("No account is linked to this sign-in, and registration is not open.")
        return await self.accounts.create_user(
            email=address,
            login=login_from(info.login or address.partition("@")[0]),
            display_name=info.name,
            email_verified=info.email_verified,
            avatar_url=info.avatar_url,
            invite=invite,
        )

    async def _store_account(
        self, account: OAuthAccount | None, user_id: str, name: str, info: ProviderUser, provider_tokens: ProviderTokens
    ) -> None:
        now = utcnow()
        if not self.provider(name).config.keep_tokens:
            provider_tokens = ProviderTokens("", None, None, provider_tokens.scope)  # kept by a module, not here
        async with self.db.transaction() as session:
            if account is None:
                account = OAuthAccount(
                    id=secrets.token_hex(16), user_id=user_id, provider=name, subject=info.subject[:255], created_at=now
                )
                session.add(account)
            else:
                account = await session.merge(account)
            account.email = info.email[:254] if info.email else None
            account.access_token = (
                self.keyring.encrypt(provider_tokens.access_token.encode(), context=token_context(account.id, "access"))
                if provider_tokens.access_token
                else None
            )
            account.refresh_token = (
                self.keyring.encrypt(
                    provider_tokens.refresh_token.encode(), context=token_context(account.id, "refresh")
                )
                if provider_tokens.refresh_token
                else None
            )
            account.token_expires_at = provider_tokens.expires_at
            account.scope = provider_tokens.scope
            account.updated_at = now
