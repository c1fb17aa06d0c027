"""The identity module's parts, assembled once per app (``module.build``) or per command (``cli.py``).

    parts = IdentityParts(platform, settings)
    parts.signin.login(...) | parts.sessions.refresh(...) | parts.accounts.update_user(...)   # the router, the CLI
    parts.resolver                                 # the principal resolver the admission stage calls
    parts.facade                                   # what other modules get: ``ctx.require(Identity)``

Each part takes its collaborators explicitly; this is the one place that knows the platform and the root
settings. Revocations fan out through ``bus`` (every part that revokes gets its ``publish``), and the
resolver's cache listens to it.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from bastion.core.dbguard import DatabaseGuard
from bastion.core.passwords import Passwords
from bastion.core.ratelimit import Limiter, Tier
from bastion.core.resilience import CircuitBreaker
from bastion.core.stores.base import StoreUnavailable
from bastion.identity import tokens
from bastion.identity.accounts import Accounts
from bastion.identity.api_keys import ApiKeys
from bastion.identity.bus import Bus, LocalBus, PostgresBus, RedisBus
from bastion.identity.cache import CredentialCache
from bastion.identity.credentials import Credentials
from bastion.identity.csrf import Csrf
from bastion.identity.last_used import LastUsed
from bastion.identity.oauth import OAuthProvider
from bastion.identity.page import SignInPage
from bastion.identity.resolver import IdentityResolver
from bastion.identity.service import Identity
from bastion.identity.sessions import Sessions
from bastion.identity.signin import ACCOUNT_TIER, SignIn

if TYPE_CHECKING:
    from bastion.core.crypto import Keyring
    from bastion.core.platform import Platform
    from bastion.identity.settings import IdentitySettings
    from bastion.settings import Settings


class IdentityParts:
    def __init__(self, platform: Platform, settings: Settings) -> None:
        config = settings.identity
        self.config = config
        self.secure_cookies = config.secure_cookies(settings.is_production)
        self.lifecycle = platform.lifecycle
        db = platform.db
        passwords = Passwords(
            time_cost=config.argon2_time_cost,
            memory_kib=config.argon2_memory_kib,
            parallelism=config.argon2_parallelism,
            max_concurrent=config.argon2_max_concurrent,
        )
        self.signer = tokens.Signer(_signing_keys(config, platform.keyring), issuer=config.jwt_issuer)
        self.cache = CredentialCache(
            ttl=config.cache_ttl_seconds, max_entries=config.cache_max_entries, stale_for=config.cache_stale_seconds
        )
        self.bus = _bus(platform, settings, self.cache)
        self.providers = {
            name: OAuthProvider(name, provider, timeout=config.oauth_timeout_seconds)
            for name, provider in config.oauth_providers.items()
        }
        invalidate = self.bus.publish
        self.csrf = Csrf(self.signer, config, cors_origins=settings.cors_origins)
        self.sessions = Sessions(db, signer=self.signer, settings=config, invalidate=invalidate)
        self.accounts = Accounts(
            db, passwords=passwords, settings=config, sessions=self.sessions, invalidate=invalidate
        )
        self.db_guard = DatabaseGuard("identity")  # the module's breaker over its database paths
        self.api_keys = ApiKeys(db, accounts=self.accounts, settings=config, invalidate=invalidate, guard=self.db_guard)
        self.signin = SignIn(
            db,
            store=platform.store,
            keyring=platform.keyring,
            accounts=self.accounts,
            sessions=self.sessions,
            passwords=passwords,
            account_limiter=_account_limiter(platform.limiter),
            providers=self.providers,
            settings=config,
        )
        self.credentials = Credentials(db, signer=self.signer, services=config.services, guard=self.db_guard)
        self.last_used = LastUsed(db)
        self.resolver = IdentityResolver(
            credentials=self.credentials,
            cache=self.cache,
            last_used=self.last_used,
            csrf=self.csrf,
            settings=config,
            lifecycle=platform.lifecycle,
        )
        self.facade = Identity(
            db, keyring=platform.keyring, accounts=self.accounts, settings=config, signin=self.signin
        )
        self.page = SignInPage(list(self.providers))
        self.bootstrap: asyncio.Task[None] | None = None
        """The first-run owner creation, running in the background after start-up (None when off)."""

    async def start(self) -> None:
        """Subscribe to revocations and (on an empty database) start the first-run owner bootstrap. The CLI
        does not call it: it only publishes. The batched writes and the purge are the module's declared jobs."""
        await self.bus.start()
        if self.config.bootstrap_owner:
            self.bootstrap = self.lifecycle.spawn(self.accounts.bootstrap(), "identity-bootstrap")

    async def close(self) -> None:
        await self.flush_touches()
        await self.bus.close()
        for provider in self.providers.values():
            await provider.close()

    # -- background work: the module's declared jobs (module.py) -------------------------------------------

    async def flush_touches(self) -> None:
        """Write the batched last-used times of keys and last-seen times of users."""
        await self.last_used.flush()

    async def purge_expired(self) -> int:
        """Delete ended sessions and expired invites (see :meth:`Sessions.purge_ended`); how many sessions."""
        return await self.sessions.purge_ended()


def _signing_keys(config: IdentitySettings, keyring: Keyring) -> list[bytes]:
    """The configured JWT secrets (newest first), else keys derived from the encryption master keys."""
    if config.jwt_secret is not None:
        return [s.get_secret_value().encode() for s in [config.jwt_secret, *config.jwt_previous_secrets]]
    return tokens.derive_keys(keyring.keys, keyring.active)


def _bus(platform: Platform, settings: Settings, cache: CredentialCache) -> Bus:
    """Redis pub/sub when Redis is configured, else LISTEN/NOTIFY on PostgreSQL, else in-process only."""
    if settings.redis_url is not None and platform.redis is not None:
        return RedisBus(
            cache.invalidate,
            cache.clear,
            url=settings.redis_url.get_secret_value(),
            channel=settings.redis_prefix + "identity:invalidate",
            publisher=platform.redis,
        )
    if platform.db.dialect == "postgresql":
        from sqlalchemy.engine import make_url

        dsn = make_url(settings.resolved_database_url).set(drivername="postgresql")
        return PostgresBus(
            cache.invalidate,
            cache.clear,
            dsn=dsn.render_as_string(hide_password=False),
            channel="bastion_identity",
            engine=platform.db.engine,
        )
    return LocalBus(cache.invalidate, cache.clear)


def _account_limiter(shared: Limiter) -> Limiter:
    """Per-account sign-in attempts at the ``auth`` tier's rate, on the platform's limiter backend (Redis when
    configured, so the count holds across instances), never banning: a ban keyed on an account would let
    anybody lock its owner out."""
    rate = shared.tiers["auth"]
    return Limiter(
        shared.backend,
        {ACCOUNT_TIER: Tier(ACCOUNT_TIER, rate.limit, rate.window, fail_closed=True)},
        breaker=CircuitBreaker(
            "identity-account-limit",
            failure_threshold=3,
            reset_timeout=2.0,
            is_failure=lambda exc: isinstance(exc, StoreUnavailable),
        ),
    )
