"""The principal resolver the admission stage calls when a request carries credentials.

* ``Authorization: Bearer bsk_…`` → the API key's principal (``kind="api_key"``);
* ``Authorization: Bearer eyJ…`` → the access token's user (``kind="user"``);
* ``Authorization: Bearer <service secret>`` → the service principal (cron, webhooks);
* the access-token cookie → the user, and for a POST, PUT, PATCH or DELETE only when the browser proves the
  request same-origin (``Sec-Fetch-Site: same-origin`` or an ``Origin`` of this host), or with a CSRF token
  that matches the CSRF cookie and the session (and an ``Origin``, when sent, of an allowed one).

It never raises: a rejected credential makes the request anonymous and is recorded with
:func:`bastion.core.principal.refuse`, so a route that needs a principal answers 401 ``INVALID_TOKEN``,
403 ``CSRF_FAILED`` or 503, and a route open to anybody still serves it.

The hot path is the in-process cache (see cache.py): a known credential costs one dict lookup. A miss
costs one indexed database read, shared by the concurrent requests that carry the same credential; the
result, either way, is cached until revoked or ``cache_ttl_seconds``. A credential in use is re-read in the
background shortly before its entry ends, so its requests never queue behind that read.
"""

from __future__ import annotations

import enum
import time
from typing import TYPE_CHECKING, Final

from bastion.core.edge.asgi import RequestContext, Scope, find_header
from bastion.core.principal import Principal, refuse
from bastion.core.resilience import SingleFlight
from bastion.identity import tokens
from bastion.identity.errors import CsrfFailed

if TYPE_CHECKING:
    from bastion.core.lifecycle import Lifecycle
    from bastion.identity.cache import CredentialCache
    from bastion.identity.credentials import Credentials, Resolution
    from bastion.identity.csrf import Csrf
    from bastion.identity.last_used import LastUsed
    from bastion.identity.settings import IdentitySettings

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


class _Foreign(enum.Enum):
    """An ``Authorization`` value that is not one of ours (Basic auth of a proxy, another scheme)."""

    TOKEN = 0


FOREIGN: Final = _Foreign.TOKEN


def _is_jwt(token: str) -> bool:
    return token.startswith("eyJ") and token.count(".") == 2


def cookie_value(header: bytes, name: bytes) -> bytes | None:
    """The value of cookie ``name`` in a ``Cookie`` header (hand-split: http.cookies parses every
    cookie with regexes and costs ~20x as much, on every request of a signed-in browser)."""
    for part in header.split(b";"):
        key, sep, value = part.strip().partition(b"=")
        if sep and key == name:
            return value.strip().strip(b'"') or None
    return None


class IdentityResolver:
    def __init__(
        self,
        *,
        credentials: Credentials,
        cache: CredentialCache,
        last_used: LastUsed,
        csrf: Csrf,
        settings: IdentitySettings,
        lifecycle: Lifecycle,
    ) -> None:
        self.credentials = credentials
        self.cache = cache
        self.last_used = last_used
        self.csrf = csrf
        self.lifecycle = lifecycle
        self.access_cookie = settings.cookie_access.encode()
        self.csrf_cookie = settings.cookie_csrf.encode()
        self.csrf_header = settings.csrf_header.lower().encode()
        self._flight: SingleFlight[Resolution] = SingleFlight()

    async def __call__(self, scope: Scope, ctx: RequestContext) -> Principal | None:
        header = ctx.authorization
        if header is not None:
            found = await self._resolve(scope, header, "bearer")
            if found is not FOREIGN:
                return found
        cookie = ctx.cookie
        if cookie is None:
            return None
        token = cookie_value(cookie, self.access_cookie)
        if token is None:
            return None
        principal = await self._resolve(scope, token, "cookie")
        if principal is FOREIGN or principal is None:
            return None
        if scope["method"] in SAFE_METHODS:
            return principal
        problem = self.csrf_problem(scope, ctx, cookie, principal)
        if problem is not None:
            refuse(scope, CsrfFailed(problem))
            return None
        return principal

    async def _resolve(self, scope: Scope, key: bytes, via: str) -> Principal | _Foreign | None:
        now = time.monotonic()
        entry = self.cache.get(key, now)
        if entry is None:
            return await self._miss(scope, key, via)
        if self.cache.due(entry, now) and not self._flight.in_flight(key):
            self._renew(key, via)
        principal = entry.principal
        if principal is None:
            if entry.refusal is not None:
                refuse(scope, entry.refusal())
            return None
        self.last_used.touch(principal, time.time())
        return principal

    async def _miss(self, scope: Scope, key: bytes, via: str) -> Principal | _Foreign | None:
        token = self._token(key, via)
        if token is None:
            return FOREIGN
        if not (token.startswith(tokens.API_KEY_PREFIX) or _is_jwt(token)):
            found = self.credentials.resolve_service(token)
            if found is None:
                return FOREIGN  # left to other resolvers (and to the cookie), with nothing recorded
            self.cache.put(key, found, created=time.monotonic())
            return found
        # Concurrent requests with the same credential share one database read.
        resolution = await self._flight.do(key, lambda: self._lookup(key, token, via))
        if resolution.outage:
            last = self.cache.stale(key, time.monotonic())
            if last is not None and last.principal is not None:
                return last.principal  # the last known answer, for a bounded time (cache.py, stale_for)
        principal = resolution.principal
        if principal is None:
            if resolution.refusal is not None:
                refuse(scope, resolution.refusal())
            return None
        self.last_used.touch(principal, time.time())
        return principal

    @staticmethod
    def _token(key: bytes, via: str) -> str | None:
        """The credential in a cache key, or None when it is not ours to judge."""
        if via == "cookie":
            token = key.decode("latin-1")
            return token if _is_jwt(token) else None  # the cookie carries access tokens only
        scheme, _, raw = key.partition(b" ")
        if scheme.lower() != b"bearer":
            return None  # Basic (a proxy's) or another scheme: the cookie may still sign the user in
        return raw.strip().decode("latin-1")

    async def _lookup(self, key: bytes, token: str, via: str) -> Resolution:
        started = time.monotonic()  # before the read: an invalidation during it must win (see cache.py)
        if _is_jwt(token):
            resolution = await self.credentials.resolve_access_token(token, via=via)
        else:
            resolution = await self.credentials.resolve_api_key(token)
        if resolution.cacheable:
            self.cache.put(
                key,
                resolution.principal,
                tags=resolution.tags,
                created=started,
                lifetime=resolution.lifetime,
                refusal=resolution.refusal,
            )
        return resolution

    def _renew(self, key: bytes, via: str) -> None:
        """Re-read a busy credential shortly before its entry ends, while the entry is still served."""
        token = self._token(key, via)
        if token is None or not (token.startswith(tokens.API_KEY_PREFIX) or _is_jwt(token)):
            return
        # A background job of the worker: cancelled at shutdown, a failure logged (and the entry then ends).
        self.lifecycle.spawn(self._flight.do(key, lambda: self._lookup(key, token, via)), "identity-renew")

    def csrf_problem(self, scope: Scope, ctx: RequestContext, cookie: bytes, principal: Principal) -> str | None:
        """Why a cookie-authenticated unsafe request fails the CSRF check, or None if it passes.

        A request the browser proves same-origin needs no CSRF header (clients such as ``@github/spark``
        never send one): ``Sec-Fetch-Site: same-origin``, or an ``Origin`` equal to the request's own
        host. Both are set by the browser and cannot be set by a page's script, so a cross-site form or
        fetch carrying the cookie still fails. A CORS-allowed origin still needs the token."""
        fetch_site = find_header(scope, b"sec-fetch-site")
        if fetch_site is not None and fetch_site != b"same-origin":
            return "This request comes from another site."
        if ctx.origin is not None:
            if self.csrf.same_origin(ctx.origin, ctx.host):
                return None
            if not self.csrf.origin_allowed(ctx.origin, ctx.host):
                return "This request comes from another site."
        elif fetch_site == b"same-origin":
            return None
        sent = find_header(scope, self.csrf_header)
        return self.csrf.problem(
            sent, cookie_value(cookie, self.csrf_cookie), str(principal.attrs.get("session_id", ""))
        )
