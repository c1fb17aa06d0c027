"""Talking to an OAuth 2.0 provider (authorization code + PKCE S256) through authlib's httpx client.

    provider = OAuthProvider("github", settings.identity.oauth_providers["github"], timeout=10.0)
    url = provider.authorization_url(redirect_uri, state=state, verifier=verifier)
    tokens, user = await provider.complete(code, verifier=verifier, redirect_uri=redirect_uri)

Every call has the configured timeout and goes through a circuit breaker per provider. The code exchange
is never retried (a code is single-use); the userinfo reads are retried once on a transient failure.
Provider failures map to our errors: ``invalid_grant`` (a wrong code or PKCE verifier) → 400
``OAUTH_CODE_REJECTED``, any other OAuth error or an error page → 502 ``OAUTH_PROVIDER_ERROR``, no answer in
time → 504 ``OAUTH_PROVIDER_TIMEOUT``.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass
from typing import Any

from bastion.core.errors import CircuitOpen
from bastion.core.resilience import CircuitBreaker, retrying
from bastion.identity.errors import OAuthCodeRejected, OAuthProviderError, OAuthProviderTimeout
from bastion.identity.settings import OAuthProviderSettings


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


class _Transient(Exception):
    """A userinfo read that may succeed if repeated (connection dropped, 5xx)."""


class OAuthProvider:
    def __init__(self, name: str, config: OAuthProviderSettings, *, timeout: float) -> None:
        self.name = name
        self.config = config
        self.timeout = timeout
        self.breaker = CircuitBreaker(
            f"oauth-{name}",
            failure_threshold=5,
            reset_timeout=30.0,
            is_failure=lambda exc: isinstance(exc, OAuthProviderError | OAuthProviderTimeout),
        )
        self._transport: Any = None

    def authorization_url(self, redirect_uri: str, *, state: str, verifier: str) -> str:
        client = self._client(redirect_uri)
        url, _ = client.create_authorization_url(self.config.authorize_url, state=state, code_verifier=verifier)
        return str(url)

    async def complete(self, code: str, *, verifier: str, redirect_uri: str) -> tuple[ProviderTokens, ProviderUser]:
        """Exchange ``code`` (with the PKCE ``verifier``) for tokens, then read who the user is."""
        try:
            self.breaker.before_call()
        except CircuitOpen as exc:
            raise OAuthProviderError(
                f"Sign-in with {self.name} is paused after repeated failures.", headers=exc.headers
            ) from exc
        try:
            client = self._client(redirect_uri)
            token = await self._call(
                client.fetch_token(
                    self.config.token_url, code=code, code_verifier=verifier, grant_type="authorization_code"
                )
            )
            user = await self._userinfo(client)
        except OAuthCodeRejected:
            self.breaker.record_success()  # the provider answered properly: the client's code was bad
            raise
        except (OAuthProviderError, OAuthProviderTimeout):
            self.breaker.record_failure()
            raise
        except BaseException:
            self.breaker.release_trial()
            raise
        self.breaker.record_success()
        return _tokens(token), user

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
            timeout=self.timeout,
            transport=self._transport,
            trust_env=False,
            follow_redirects=False,
        )

    async def _call(self, pending: Any) -> Any:
        """Await an authlib call, translating transport and protocol failures into our errors."""
        from authlib.integrations.base_client import OAuthError

        httpx2 = _httpx()
        try:
            return await pending
        except OAuthError as exc:
            if exc.error == "invalid_grant":
                raise OAuthCodeRejected("The provider did not accept the sign-in code; start again.") from exc
            raise OAuthProviderError(f"{self.name} refused the token request ({exc.error}).") from exc
        except httpx2.TimeoutException as exc:
            raise OAuthProviderTimeout(f"{self.name} did not answer within {self.timeout:g} s.") from exc
        except (httpx2.HTTPError, ValueError) as exc:
            raise OAuthProviderError(f"{self.name} answered the token request with an error.") from exc

    async def _userinfo(self, client: Any) -> ProviderUser:
        info = await self._get_json(client, self.config.userinfo_url)
        if not isinstance(info, dict):
            raise OAuthProviderError(f"{self.name} returned no user information.")
        c = self.config
        subject = info.get(c.subject_field)
        if subject is None or str(subject) == "":
            raise OAuthProviderError(f"{self.name} returned a user without an id.")
        email = _text(info.get(c.email_field))
        verified = bool(info.get(c.email_verified_field)) if c.email_verified_field else False
        if c.emails_url and (email is None or not verified):
            email, verified = await self._primary_email(client, email)
        return ProviderUser(
            subject=str(subject),
            email=email,
            email_verified=verified and email is not None,
            login=_text(info.get(c.login_field)) if c.login_field else None,
            name=_text(info.get(c.name_field)) if c.name_field else None,
            avatar_url=_text(info.get(c.avatar_field)) if c.avatar_field else None,
        )

    async def _primary_email(self, client: Any, fallback: str | None) -> tuple[str | None, bool]:
        """GitHub-style ``[{email, primary, verified}]``: the verified primary address."""
        assert self.config.emails_url is not None
        emails = await self._get_json(client, self.config.emails_url)
        for item in emails if isinstance(emails, list) else []:
            if isinstance(item, dict) and item.get("primary") and item.get("verified"):
                return _text(item.get("email")), True
        return fallback, False

    async def _get_json(self, client: Any, url: str) -> Any:
        httpx2 = _httpx()
        try:
            async for attempt in retrying(on=_Transient, attempts=2, timeout=self.timeout):
                with attempt:
                    try:
                        response = await client.get(url, headers={"Accept": "application/json"})
                    except (httpx2.ConnectError, httpx2.RemoteProtocolError, httpx2.ReadError) as exc:
                        raise _Transient(str(exc)) from exc
                    if response.status_code >= 500:
                        raise _Transient(f"HTTP {response.status_code}")
        except _Transient as exc:
            raise OAuthProviderError(f"{self.name} failed to return user information.") from exc
        except httpx2.TimeoutException as exc:
            raise OAuthProviderTimeout(f"{self.name} did not answer within {self.timeout:g} s.") from exc
        except httpx2.HTTPError as exc:
            raise OAuthProviderError(f"{self.name} failed to return user information.") from exc
        if response.status_code != 200:
            raise OAuthProviderError(f"{self.name} refused to return user information (HTTP {response.status_code}).")
        try:
            return response.json()
        except ValueError as exc:
            raise OAuthProviderError(f"{self.name} returned user information that is not JSON.") from exc


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
    )
