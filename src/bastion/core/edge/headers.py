"""Edge stage 3, headers: trusted hosts, CORS from an allow-list, and security headers at parity with
helmet's defaults (tuned for an API).

* A ``Host`` that is not in ``allowed_hosts`` (``*.example.com`` matches sub-domains) gets 400.
* CORS: an allowed ``Origin`` is echoed (with ``Vary: Origin``); preflights are answered here with the
  allowed methods and the requested headers; a preflight from any other origin gets 403.
* Security headers are added to every response unless the response set its own (a page sets its own
  ``Content-Security-Policy``): CSP ``default-src 'none'; frame-ancestors 'none'`` for an API, nosniff,
  ``X-Frame-Options: DENY``, ``Referrer-Policy: no-referrer``, COOP and CORP ``same-origin``,
  ``Origin-Agent-Cluster``, ``X-DNS-Prefetch-Control: off``, ``X-Download-Options: noopen``,
  ``X-Permitted-Cross-Domain-Policies: none``, ``X-XSS-Protection: 0``, ``Cache-Control: no-store``,
  and HSTS in production. Nothing discloses the stack: ``X-Powered-By`` is removed and ``Server`` is
  replaced by a plain ``bastion`` (granian adds its own name when a response has none).
"""

from __future__ import annotations

from collections.abc import Sequence

from bastion.core.edge.asgi import (
    CONTEXT_KEY,
    ASGIApp,
    Message,
    Receive,
    RequestContext,
    Scope,
    Send,
    find_header,
    send_problem,
)
from bastion.core.errors import Forbidden, InvalidHost

API_CSP = b"default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
_SECURITY = (
    (b"content-security-policy", API_CSP),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"origin-agent-cluster", b"?1"),
    (b"x-dns-prefetch-control", b"off"),
    (b"x-download-options", b"noopen"),
    (b"x-permitted-cross-domain-policies", b"none"),
    (b"x-xss-protection", b"0"),
    (b"cache-control", b"no-store"),
)
_HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")
_DISCLOSING = frozenset({b"server", b"x-powered-by"})
_SERVER = (b"server", b"bastion")
_EXPOSED = (
    b"X-Request-ID, X-Response-Time, RateLimit, RateLimit-Policy, Retry-After, "
    b"X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset"
)


class HeadersMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        allowed_hosts: Sequence[str],
        cors_origins: Sequence[str] = (),
        cors_allow_credentials: bool = False,
        allowed_methods: Sequence[str] = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"),
        hsts: bool = False,
    ) -> None:
        self.app = app
        hosts = [h.lower() for h in allowed_hosts]
        self.any_host = "*" in hosts
        self.exact_hosts = frozenset(h for h in hosts if not h.startswith("*."))
        self.host_suffixes = tuple(h[1:] for h in hosts if h.startswith("*."))
        self._host_cache: dict[bytes, bool] = {}
        self.any_origin = "*" in cors_origins
        self.origins = frozenset(o.rstrip("/").encode() for o in cors_origins if o != "*")
        self.credentials = cors_allow_credentials
        self.allow_methods = ", ".join(allowed_methods).encode()
        security = (*_SECURITY, *((_HSTS,) if hsts else ()), _SERVER)
        # The defaults to add, precomputed for each combination of "the response set its own CSP" and
        # "... its own Cache-Control", so that a response costs one pass over its own headers.
        self.defaults = {
            own_policy: {
                own_cache: tuple(
                    h
                    for h in security
                    if not (own_policy and h[0] == b"content-security-policy")
                    and not (own_cache and h[0] == b"cache-control")
                )
                for own_cache in (False, True)
            }
            for own_policy in (False, True)
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ctx: RequestContext = scope[CONTEXT_KEY]

        if not self._host_allowed(ctx.host):
            await send_problem(self._secured(send), InvalidHost("This host name is not served here."), ctx.request_id)
            return

        origin = ctx.origin
        if origin is not None:
            allowed = self.any_origin or origin in self.origins
            if scope["method"] == "OPTIONS" and find_header(scope, b"access-control-request-method"):
                await self._preflight(scope, send, ctx, origin, allowed)
                return
            if allowed:
                ctx.response_headers.extend(self._cors_headers(origin))

        await self.app(scope, receive, self._secured(send))

    def _secured(self, send: Send) -> Send:
        defaults = self.defaults

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = []
                own_policy = own_cache = False
                for header in message.get("headers", ()):
                    name = header[0].lower()
                    if name in _DISCLOSING:
                        continue
                    if name == b"content-security-policy":
                        own_policy = True
                    elif name == b"cache-control":
                        own_cache = True
                    headers.append(header)
                headers.extend(defaults[own_policy][own_cache])
                message["headers"] = headers
            await send(message)

        return send_secured

    def _host_allowed(self, host: bytes) -> bool:
        if self.any_host:
            return True
        cached = self._host_cache.get(host)
        if cached is None:
            name = host.decode("latin-1").lower()
            if name.startswith("["):  # IPv6 literal, maybe with a port
                name = name[: name.find("]") + 1]
            else:
                name = name.rpartition(":")[0] if ":" in name else name
            cached = name in self.exact_hosts or any(name.endswith(s) for s in self.host_suffixes)
            if len(self._host_cache) > 1000:
                self._host_cache.clear()
            self._host_cache[host] = cached
        return cached

    def _cors_headers(self, origin: bytes) -> list[tuple[bytes, bytes]]:
        echo = b"*" if self.any_origin and not self.credentials else origin
        headers = [
            (b"access-control-allow-origin", echo),
            (b"vary", b"Origin"),
            (b"access-control-expose-headers", _EXPOSED),
        ]
        if self.credentials:
            headers.append((b"access-control-allow-credentials", b"true"))
        return headers

    async def _preflight(self, scope: Scope, send: Send, ctx: RequestContext, origin: bytes, allowed: bool) -> None:
        secured = self._secured(send)
        if not allowed:
            await send_problem(secured, Forbidden("This origin may not call the API from a browser."), ctx.request_id)
            return
        headers = self._cors_headers(origin)
        headers.append((b"access-control-allow-methods", self.allow_methods))
        requested = find_header(scope, b"access-control-request-headers")
        if requested:
            headers.append((b"access-control-allow-headers", requested))
        headers.append((b"access-control-max-age", b"600"))
        headers.append((b"content-length", b"0"))
        await secured({"type": "http.response.start", "status": 204, "headers": headers})
        await secured({"type": "http.response.body", "body": b""})
