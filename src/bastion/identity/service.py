"""What other modules use of identity: the :class:`Identity` facade, which the identity module provides.

A module asks for it by type in its ``build`` (identity must be listed before it)::

    from bastion.identity.service import Identity

    def build(ctx: ModuleContext[Settings]) -> ModuleParts:
        identity = ctx.require(Identity)
        ...
        user = await identity.profile(principal)                  # UserProfile | None
        limits = identity.plan_limits(user.plan)                  # PlanLimits read from settings
        await identity.set_plan(user.id, "pro")                   # billing; every instance sees it at once
        token = await identity.oauth_access_token(user.id, "ghl") # a provider's API token, decrypted
        identity.on_oauth_signin("gohighlevel", hook)             # hook(user_id, tokens) after each sign-in

The user a principal acts for is ``principal.user_id`` (core): a user, an API key's owner, or None for a
service. Everything else in this package is identity's own (wiring.py assembles it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from sqlalchemy import select

from bastion.core.crypto import Keyring
from bastion.core.db import Database
from bastion.core.principal import Principal
from bastion.identity.accounts import Accounts
from bastion.identity.models import OAuthAccount, User
from bastion.identity.oauth import ProviderTokens
from bastion.identity.schemas import UserProfile
from bastion.identity.settings import IdentitySettings, PlanLimits
from bastion.identity.signin import OAuthHook, SignIn, token_context
from bastion.identity.views import as_profile

if TYPE_CHECKING:
    from bastion.settings import Settings

__all__ = ["Identity", "OAuthHook", "PlanLimits", "ProviderTokens", "UserProfile", "plan_limits", "token_context"]


class Identity:
    """Identity as other modules see it: who a principal's user is, what their plan allows, and changes to it."""

    def __init__(
        self,
        db: Database,
        *,
        keyring: Keyring,
        accounts: Accounts,
        settings: IdentitySettings,
        signin: SignIn | None = None,
    ) -> None:
        self._db = db
        self._keyring = keyring
        self._accounts = accounts
        self._settings = settings
        self._signin = signin

    def on_oauth_signin(self, provider: str, hook: OAuthHook) -> None:
        """Call ``hook(user_id, tokens)`` after every sign-in with ``provider`` (when it is configured), in the
        sign-in's request: a hook that raises fails the sign-in. The workflows module keeps GoHighLevel's
        per-location tokens this way (``tokens.extra`` has the ``locationId``)."""
        if self._signin is not None and provider in self._signin.providers:
            self._signin.hooks.setdefault(provider, []).append(hook)

    def plan_limits(self, plan: str) -> PlanLimits:
        """The limits of ``plan`` as configured (``BASTION_IDENTITY__PLANS__<PLAN>__<LIMIT>``); an unknown plan
        gets the free plan's."""
        return self._settings.plan_limits(plan)

    async def profile(self, principal: Principal | None) -> UserProfile | None:
        """The profile of the user a principal acts for (the user itself, or the owner of an API key). None
        when anonymous, for a service principal, or when the user is gone or disabled."""
        if principal is None or principal.user_id is None:
            return None
        async with self._db.session() as session:
            user = await session.get(User, principal.user_id)
        return None if user is None or user.disabled else as_profile(user)

    async def set_plan(self, user_id: str, plan: Literal["free", "pro"]) -> None:
        """Change a user's plan (billing calls it); cached principals everywhere pick it up at once."""
        await self._accounts.set_plan(user_id, plan)

    async def oauth_access_token(self, user_id: str, provider: str) -> str | None:
        """The user's stored access token at ``provider`` (decrypted), for calling its API on their behalf."""
        async with self._db.session() as session:
            account = await session.scalar(
                select(OAuthAccount)
                .where(OAuthAccount.user_id == user_id, OAuthAccount.provider == provider)
                .order_by(OAuthAccount.updated_at.desc())
                .limit(1)
            )
        if account is None or account.access_token is None:
            return None
        return self._keyring.decrypt(account.access_token, context=token_context(account.id, "access")).decode()


def plan_limits(settings: Settings | IdentitySettings, plan: str) -> PlanLimits:
    """:meth:`Identity.plan_limits` from settings alone, where no app is running (configuration checks)."""
    config = settings if isinstance(settings, IdentitySettings) else settings.identity
    return config.plan_limits(plan)
