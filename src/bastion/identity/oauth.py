"""Talking to an OAuth 2.0 provider (authorization code + PKCE S256) through authlib's httpx client.

    provider = OAuthProvider("github", settings.identity.oauth_providers["github"], timeout=10.0)
    url = provider.authorization_url(redirect_uri, state=state, verifier=verifier)
    tokens, user = await provider.complete(code, verifier=verifier, redirect_uri=redirect_uri)

Every call goes through core's :class:`~bastion.core.upstream.Upstream` for the provider (``oauth:<name>``:
its circuit breaker, bulkhead and metrics), with the configured timeout, judged by :func:`classify`. The
code exchange is never retried (a code is single-use); the userinfo reads are retried once on a transient
failure (a connection refused or dropped, a 5xx), never on a timeout. Provider failures map to our errors:
``invalid_grant`` (a wrong code or PKCE verifier) → 400 ``OAUTH_CODE_REJECTED``, any other OAuth error or an
error page → 502 ``OAUTH_PROVIDER_ERROR``, no answer in time → 504 ``OAUTH_PROVIDER_TIMEOUT``.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote

from bastion.core.errors import AppError, BulkheadFull, CircuitOpen
from bastion.core.http import classify_http, is_timeout
from bastion.core.upstream import Upstream, UpstreamSettings, Verdict
from bastion.identity.errors import OAuthCodeRejected, OAuthProviderError, OAuthProviderTimeout
from bastion.identity.settings import OAuthProviderSettings

T = TypeVar("T")
_REJECTED = Verdict(failure=False, retry=False, fall_back=False)
_FAILED = Verdict(failure=True, retry=False, fall_back=False)


@dataclass(frozen=True)
class ProviderUser:
    subject: str
    email: str | None
    email_verified: bool
    login: str | None
    name: str | None
    avatar_url: str | None


@dataclass(frozen=True)
class ProviderTokens:
    access_token: str
    refresh_token: str | None
    expires_at: dt.datetime | None
    scope: str | None
    extra: Mapping[str, Any] = field(default_factory=dict)
    """The token response's other fields (GoHighLevel: ``locationId``, ``companyId``, ``userType``, ``userId``)."""


def classify(exc: BaseException) -> Verdict:
    """The one verdict on an error of a provider call.

    ``invalid_grant`` is the sign-in's fault (a wrong code or verifier), not the provider's; any other OAuth
    error, an answer that is not what the protocol promises (:class:`OAuthProviderError`, raised while
    reading it) and a timeout count as failures and are not repeated; the rest is core's HTTP verdict
    (connection errors and 5xx of the userinfo reads are retried)."""
    from authlib.integrations.base_client import OAuthError  # loaded with the first client

    if isinstance(exc, OAuthError):
        return _REJECTED if exc.error == "invalid_grant" else _FAILED
    if isinstance(exc, OAuthProviderError) or is_timeout(exc):
        return _FAILED
    return classify_http(exc)


class OAuthProvider:
    def __init__(self, name: str, config: OAuthProviderSettings, *, timeout: float) -> None:
        self.name = name
        self.config = config
        self.timeout = timeout
        self.upstream = Upstream(
            f"oauth:{name}",
            UpstreamSettings(
                timeout_seconds=timeout,
                connect_timeout_seconds=timeout,
                retries=1,  # the userinfo reads; the code exchange asks for none
                max_retry_wait_seconds=2.0,
                breaker_failures=5,
                breaker_reset_seconds=30.0,
                # sign-ins are rare next to API calls: the bulkhead only stops a hung provider from
                # gathering every worker's flows
                max_concurrent=64,
                max_waiting=256,
            ),
            classify,
        )
        self._transport: Any = None

    def authorization_url(self, redirect_uri: str, *, state: str, verifier: str) -> str:
        client = self._client(redirect_uri)
        url, _ = client.create_authorization_url(self.config.authorize_url, state=state, code_verifier=verifier)
        return str(url)

    async def complete(self, code: str, *, verifier: str, redirect_uri: str) -> tuple[ProviderTokens, ProviderUser]:
        """Exchange ``code`` (with the PKCE ``verifier``) for tokens, then read who the user is."""
        client = self._client(redirect_uri)
        token = await self._through(
            lambda: client.fetch_token(
                self.config.token_url,
                code=code,
                code_verifier=verifier,
                grant_type="authorization_code",
                **self.config.token_params,
            ),
            retries=0,  # a code is single-use: repeating the exchange could only fail, or worse
            failed=f"{self.name} answered the token request with an error.",
        )
        tokens = _tokens(token)
        user = await self._userinfo(client, tokens)
        return tokens, user

    async def close(self) -> None:
        if self._transport is not None:
            await self._transport.aclose()
            self._transport = None

    def _client(self, redirect_uri: str) -> Any:
        from authlib.integrations.httpx_client import AsyncOAuth2Client

        httpx2 = _httpx()
        if self._transport is None:  # one pooled transport per provider, shared by every flow
            self._transport = httpx2.AsyncHTTPTransport(retries=0)
        return AsyncOAuth2Client(
            client_id=self.config.client_id,
            client_secret=self.config.client_secret.get_secret_value(),
            scope=self.config.scope or None,
            redirect_uri=redirect_uri,
            code_challenge_method="S256",
            token_endpoint_auth_method=self.config.token_auth,
            timeout=self.timeout,
            transport=self._transport,
            trust_env=False,
            follow_redirects=False,
        )

    async def _through(self, fn: Callable[[], Awaitable[T]], *, retries: int | None, failed: str) -> T:
        """``fn()`` through the provider's upstream, its failures translated into our errors (``failed`` is
        what a failed HTTP exchange is reported as)."""
        try:
            return await self.upstream.call(fn, retries=retries)
        except Exception as exc:
            public = self._public(exc, failed)
            if public is exc:
                raise
            raise public from exc

    def _public(self, exc: Exception, failed: str) -> Exception:
        """What the client is told about ``exc``; an exception that is not the provider's is left as it is."""
        from authlib.integrations.base_client import OAuthError

        if isinstance(exc, CircuitOpen):
            return OAuthProviderError(
                f"Sign-in with {self.name} is paused after repeated failures.", headers=exc.headers
            )
        if isinstance(exc, BulkheadFull):
            return OAuthProviderError(
                f"Too many sign-ins with {self.name} are under way; try again.", headers=exc.headers
            )
        if isinstance(exc, AppError):
            return exc
        if isinstance(exc, OAuthError):
            if exc.error == "invalid_grant":
                return OAuthCodeRejected("The provider did not accept the sign-in code; start again.")
            return OAuthProviderError(f"{self.name} refused the token request ({exc.error}).")
        if is_timeout(exc):
            return OAuthProviderTimeout(f"{self.name} did not answer within {self.timeout:g} s.")
        if isinstance(exc, _httpx().HTTPError | ValueError):
            return OAuthProviderError(failed)
        return exc

    async def _userinfo(self, client: Any, tokens: ProviderTokens) -> ProviderUser:
        c = self.config
        url = _PLACEHOLDER.sub(lambda m: quote(str(tokens.extra.get(m.group(1), "")), safe=""), c.userinfo_url)

        async def read_user() -> dict[str, Any]:
            # checked inside the call, so that a provider answering nonsense counts against its circuit
            info = await self._get_json(client, url)
            if not isinstance(info, dict):
                raise OAuthProviderError(f"{self.name} returned no user information.")
            subject = info.get(c.subject_field)
            if subject is None or str(subject) == "":
                raise OAuthProviderError(f"{self.name} returned a user without an id.")
            return info

        info = await self._read(read_user)
        email = _text(info.get(c.email_field))
        verified = bool(info.get(c.email_verified_field)) if c.email_verified_field else False
        if c.emails_url and (email is None or not verified):
            email, verified = await self._primary_email(client, email)
        return ProviderUser(
            subject=str(info[c.subject_field]),
            email=email,
            email_verified=verified and email is not None,
            login=_text(info.get(c.login_field)) if c.login_field else None,
            name=_text(info.get(c.name_field)) if c.name_field else None,
            avatar_url=_text(info.get(c.avatar_field)) if c.avatar_field else None,
        )

    async def _primary_email(self, client: Any, fallback: str | None) -> tuple[str | None, bool]:
        """GitHub-style ``[{email, primary, verified}]``: the verified primary address."""
        url = self.config.emails_url
        assert url is not None
        emails = await self._read(lambda: self._get_json(client, url))
        for item in emails if isinstance(emails, list) else []:
            if isinstance(item, dict) and item.get("primary") and item.get("verified"):
                return _text(item.get("email")), True
        return fallback, False

    async def _read(self, fn: Callable[[], Awaitable[T]]) -> T:
        """A userinfo read: retried once on a transient failure (see :func:`classify`)."""
        return await self._through(fn, retries=None, failed=f"{self.name} failed to return user information.")

    async def _get_json(self, client: Any, url: str) -> Any:
        response = await client.get(url, headers={"Accept": "application/json", **self.config.userinfo_headers})
        if response.status_code >= 500:
            response.raise_for_status()  # the provider failed: a status error, which classify retries
        if response.status_code != 200:
            raise OAuthProviderError(f"{self.name} refused to return user information (HTTP {response.status_code}).")
        try:
            return response.json()
        except ValueError as exc:
            raise OAuthProviderError(f"{self.name} returned user information that is not JSON.") from exc


_PLACEHOLDER = re.compile(r"\{(\w+)\}")
_TOKEN_FIELDS = frozenset(
    {"access_token", "refresh_token", "id_token", "expires_at", "expires_in", "scope", "token_type"}
)


def _httpx() -> Any:
    """The HTTP client library authlib's client is built on: httpx2 when installed, else httpx. Its
    transports and exceptions must come from the same one."""
    from authlib.integrations.httpx_client import _compat

    return _compat.httpx2


def _text(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    return value.strip() or None


def _tokens(token: Any) -> ProviderTokens:
    if not isinstance(token, dict) or not isinstance(token.get("access_token"), str):
        raise OAuthProviderError("The provider's token response has no access token.")
    expires_at = token.get("expires_at")
    when = dt.datetime.fromtimestamp(float(expires_at), dt.UTC) if isinstance(expires_at, int | float) else None
    if when is None and isinstance(token.get("expires_in"), int | float):
        when = dt.datetime.fromtimestamp(time.time() + float(token["expires_in"]), dt.UTC)
    refresh = token.get("refresh_token")
    scope = token.get("scope")
    return ProviderTokens(
        access_token=token["access_token"],
        refresh_token=refresh if isinstance(refresh, str) else None,
        expires_at=when,
        scope=str(scope)[:512] if scope else None,
        extra={k: v for k, v in token.items() if k not in _TOKEN_FIELDS},
    )
