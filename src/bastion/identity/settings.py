"""Settings of the identity module (``BASTION_IDENTITY__<FIELD>``).

BASTION_IDENTITY__REGISTRATION=invite                      # open | invite | closed
BASTION_IDENTITY__JWT_SECRET=<48 random bytes, base64>     # else derived from BASTION_CRYPTO__KEYS
BASTION_IDENTITY__PUBLIC_URL=https://app.example.com       # origin of OAuth redirect URIs
BASTION_IDENTITY__OAUTH_PROVIDERS__GITHUB__PRESET=github
BASTION_IDENTITY__OAUTH_PROVIDERS__GITHUB__CLIENT_ID=Iv1.abc
BASTION_IDENTITY__OAUTH_PROVIDERS__GITHUB__CLIENT_SECRET=...
BASTION_IDENTITY__SERVICES='{"cron": {"secret": "<32+ random characters>", "scopes": ["cron"]}}'
BASTION_IDENTITY__PLANS__PRO__API_KEYS=100
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from bastion.core.settings import Problem

DAY = 86_400
MIN_SECRET_BYTES = 32


class PlanLimits(BaseModel):
    """What a plan allows. ``None`` means unlimited. Modules read the limits they enforce; an operator may
    add more (``BASTION_IDENTITY__PLANS__PRO__UPLOADS_PER_DAY=50``), read back with ``limits.extra("...")``."""

    model_config = ConfigDict(frozen=True, extra="allow")

    api_keys: int = Field(3, ge=0)
    ai_requests_per_day: int | None = Field(50, ge=0)
    ai_tokens_per_day: int | None = Field(20_000, ge=0)
    analyses_per_day: int | None = Field(10, ge=0)
    workflow_issues_shown: int | None = Field(3, ge=0)
    history_days: int = Field(7, ge=0)

    def extra(self, name: str, default: int | None = None) -> int | None:
        value = (self.model_extra or {}).get(name, default)
        return None if value is None else int(value)


class Plans(BaseModel):
    model_config = ConfigDict(frozen=True)

    free: PlanLimits = PlanLimits()
    pro: PlanLimits = PlanLimits(
        api_keys=25,
        ai_requests_per_day=None,
        ai_tokens_per_day=1_000_000,
        analyses_per_day=None,
        workflow_issues_shown=None,
        history_days=365,
    )


_PRESETS: dict[str, dict[str, str | dict[str, str] | bool | None]] = {
    "github": {
        "authorize_url": "https://github.com/login/oauth/authorize",
        "token_url": "https://github.com/login/oauth/access_token",
        "userinfo_url": "https://api.github.com/user",
        "emails_url": "https://api.github.com/user/emails",
        "scope": "read:user user:email",
        "subject_field": "id",
        "login_field": "login",
        "name_field": "name",
        "avatar_field": "avatar_url",
        "email_field": "email",
        "email_verified_field": None,
    },
    "google": {
        "authorize_url": "https://accounts.google.com/o/oauth2/v2/auth",
        "token_url": "https://oauth2.googleapis.com/token",
        "userinfo_url": "https://openidconnect.googleapis.com/v1/userinfo",
        "emails_url": None,
        "scope": "openid email profile",
        "subject_field": "sub",
        "login_field": None,
        "name_field": "name",
        "avatar_field": "picture",
        "email_field": "email",
        "email_verified_field": "email_verified",
    },
    # GoHighLevel (marketplace.gohighlevel.com/docs/Authorization): the location chooser, a token endpoint
    # taking user_type and the client's credentials in the form, no userinfo endpoint of its own: the user
    # is read from the Users API with the userId of the token response, and the tokens are per location
    # (the workflows module keeps them, bound to the location id, and refreshes them).
    "gohighlevel": {
        "authorize_url": "https://marketplace.gohighlevel.com/oauth/chooselocation",
        "token_url": "https://services.leadconnectorhq.com/oauth/token",
        "userinfo_url": "https://services.leadconnectorhq.com/users/{userId}",
        "scope": "workflows.readonly users.readonly locations.readonly oauth.readonly oauth.write",
        "subject_field": "id",
        "login_field": None,
        "name_field": "name",
        "avatar_field": None,
        "email_field": "email",
        "email_verified_field": None,
        "token_params": {"user_type": "Location"},
        "token_auth": "client_secret_post",
        "userinfo_headers": {"Version": "2021-07-28"},
        "keep_tokens": False,
    },
}


class OAuthProviderSettings(BaseModel):
    """One OAuth 2.0 provider (authorization code + PKCE). ``preset`` fills the endpoints and the userinfo
    field names of GitHub or Google; a ``custom`` provider names them all."""

    model_config = ConfigDict(frozen=True)

    preset: Literal["github", "google", "gohighlevel", "custom"] = "custom"
    client_id: str
    client_secret: SecretStr
    authorize_url: str = ""
    token_url: str = ""
    userinfo_url: str = ""
    emails_url: str | None = None
    """GitHub's ``/user/emails``: where the verified primary address is when ``/user`` has none."""
    scope: str = ""
    subject_field: str = "sub"
    login_field: str | None = None
    name_field: str | None = "name"
    avatar_field: str | None = None
    email_field: str = "email"
    email_verified_field: str | None = "email_verified"
    """Userinfo field saying the provider verified the address; None: only ``emails_url`` can say so."""
    token_params: dict[str, str] = {}
    """Extra fields of the code exchange (GoHighLevel: ``user_type=Location``)."""
    token_auth: Literal["client_secret_basic", "client_secret_post"] = "client_secret_basic"  # noqa: S105 - a method name
    """How the client authenticates at the token endpoint: HTTP Basic, or its credentials in the form."""
    userinfo_headers: dict[str, str] = {}
    """Headers of the userinfo read (GoHighLevel: its API ``Version``). ``{field}`` in ``userinfo_url`` is
    filled from the token response (GoHighLevel: ``/users/{userId}``)."""
    keep_tokens: bool = True
    """Store the provider's tokens with the account. Off where a module keeps them itself (GoHighLevel's are
    per location and rotate on every refresh: two copies would disagree)."""

    @model_validator(mode="before")
    @classmethod
    def _fill_preset(cls, values: object) -> object:
        if isinstance(values, dict) and values.get("preset") in _PRESETS:
            return {**_PRESETS[str(values["preset"])], **values}
        return values

    @model_validator(mode="after")
    def _endpoints(self) -> OAuthProviderSettings:
        if not (self.authorize_url and self.token_url and self.userinfo_url):
            raise ValueError("a custom provider needs authorize_url, token_url and userinfo_url")
        return self

    def urls(self) -> list[str]:
        return [u for u in (self.authorize_url, self.token_url, self.userinfo_url, self.emails_url) if u]


class ServiceCredential(BaseModel):
    """A shared secret for a machine caller (cron, webhooks): ``Authorization: Bearer <secret>``."""

    model_config = ConfigDict(frozen=True)

    secret: SecretStr
    scopes: list[str] = ["*"]


class IdentitySettings(BaseModel):
    model_config = ConfigDict(frozen=True)

    registration: Literal["open", "invite", "closed"] = "open"
    """Who may create an account (with a password or through OAuth): anybody, holders of an invite, nobody
    (accounts are then made with ``bastion users create``)."""
    bootstrap_owner: bool = True
    """On an empty database, create the owner at start-up and print its password once to stderr."""
    owner_email: str = "owner@localhost"

    jwt_secret: SecretStr | None = None
    """HS256 key for access tokens (32+ bytes). Unset: derived (HKDF) from each of BASTION_CRYPTO__KEYS, so
    the access-token keys rotate with the master keys."""
    jwt_previous_secrets: list[SecretStr] = []
    """Keys still accepted for verification while a new ``jwt_secret`` takes over."""
    jwt_issuer: str = "bastion"
    access_token_seconds: int = Field(900, ge=30, le=DAY)
    refresh_token_seconds: int = Field(30 * DAY, ge=300)
    """Lifetime of a session (a refresh-token family) from sign-in; rotation does not extend it. Also the
    absolute timeout of a sliding cookie session."""
    sliding_sessions: bool = True
    """Cookie sessions: an expired access cookie is renewed at the edge while its session is alive (see
    sliding.py), so a browser app stays signed in without calling ``/auth/refresh``."""
    session_idle_seconds: int = Field(DAY, ge=60)
    """A cookie session not used for this long is not renewed: the user signs in again (idle timeout)."""

    cookie_access: str = "bastion_access"
    cookie_refresh: str = "bastion_refresh"
    cookie_csrf: str = "bastion_csrf"
    csrf_header: str = "X-CSRF-Token"
    cookie_secure: bool | None = None
    """Secure cookies; by default on in production and off in development (plain-HTTP localhost)."""
    cookie_domain: str | None = None

    password_min_length: int = Field(10, ge=8, le=128)
    # OWASP's argon2id baseline (19 MiB, 2 passes, 1 lane): ~0.1 s a hash on one core of a small server.
    argon2_time_cost: int = Field(2, ge=1)
    argon2_memory_kib: int = Field(19_456, ge=8)
    argon2_parallelism: int = Field(1, ge=1)
    argon2_max_concurrent: int = Field(4, ge=1)
    """Hashes computed at once (each holds ``argon2_memory_kib``); more wait their turn."""

    cache_ttl_seconds: float = Field(10.0, gt=0, le=300)
    """Longest an instance trusts a verified credential without asking the database again. Revocation is
    pushed to every instance at once (Redis pub/sub or PostgreSQL NOTIFY); this bounds a missed message."""
    cache_max_entries: int = Field(20_000, ge=100)
    cache_stale_seconds: float = Field(60.0, ge=0, le=3600)
    """While the database does not answer, a credential whose cache entry ended less than this ago is still
    accepted (its last known answer); revocations still apply, as they arrive on the bus."""
    touch_interval_seconds: float = Field(30.0, gt=0)
    """How often last-used (keys) and last-seen (users) times are written, batched."""

    public_url: str | None = None
    """The public origin (``https://app.example.com``) OAuth redirect URIs are built on; in development
    the request's own origin is used."""
    oauth_providers: dict[str, OAuthProviderSettings] = {}
    oauth_timeout_seconds: float = Field(10.0, gt=0)
    oauth_state_seconds: int = Field(600, ge=60)
    login_redirect: str = "/"
    """Where the browser goes after an OAuth sign-in without a ``next``."""

    services: dict[str, ServiceCredential] = {}
    plans: Plans = Plans()

    def secure_cookies(self, production: bool) -> bool:
        return production if self.cookie_secure is None else self.cookie_secure

    def plan_limits(self, plan: str) -> PlanLimits:
        """The limits of ``plan`` as configured (``BASTION_IDENTITY__PLANS__<PLAN>__<LIMIT>``); an unknown plan
        gets the free plan's."""
        found: PlanLimits = getattr(self.plans, plan, None) or self.plans.free
        return found

    def problems(self, production: bool) -> list[Problem]:
        """Unsafe identity settings: errors in production, warnings in development (as the core's)."""
        severity: Literal["error", "warning"] = "error" if production else "warning"
        found: list[Problem] = []
        secrets = [
            ("BASTION_IDENTITY__JWT_SECRET", self.jwt_secret),
            *(("BASTION_IDENTITY__JWT_PREVIOUS_SECRETS", s) for s in self.jwt_previous_secrets),
        ]
        for setting, secret in secrets:
            if secret is not None and len(secret.get_secret_value().encode()) < MIN_SECRET_BYTES:
                found.append(Problem("error", setting, f"must be at least {MIN_SECRET_BYTES} bytes"))
        for name, service in self.services.items():
            if len(service.secret.get_secret_value()) < MIN_SECRET_BYTES:
                found.append(
                    Problem(
                        "error",
                        "BASTION_IDENTITY__SERVICES",
                        f"the secret of {name!r} must be at least {MIN_SECRET_BYTES} characters",
                    )
                )
        if production and self.cookie_secure is False:
            found.append(
                Problem("error", "BASTION_IDENTITY__COOKIE_SECURE", "session cookies must be Secure in production")
            )
        for name, provider in self.oauth_providers.items():
            if any(not url.startswith("https://") for url in provider.urls()):
                found.append(
                    Problem(severity, "BASTION_IDENTITY__OAUTH_PROVIDERS", f"{name}: provider endpoints must use https")
                )
        if self.oauth_providers and production and not (self.public_url or "").startswith("https://"):
            found.append(
                Problem(
                    "error",
                    "BASTION_IDENTITY__PUBLIC_URL",
                    "set the https origin OAuth redirect URIs are built on (not the Host header)",
                )
            )
        if production and self.registration == "open":
            found.append(
                Problem("warning", "BASTION_IDENTITY__REGISTRATION", "anyone may register; 'invite' or 'closed'?")
            )
        if not self.login_redirect.startswith("/") and not self.login_redirect.startswith("https://"):
            found.append(Problem(severity, "BASTION_IDENTITY__LOGIN_REDIRECT", "a path or an https URL"))
        return found
