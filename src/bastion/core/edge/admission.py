"""Edge stage 5, admission: who is calling, are they banned, and are they within their tier's limit.

The principal comes from the installed resolver (the identity module); the limit key is the
principal when there is one, else the client address. One limiter call checks the ban and decides
(one store round trip). Every limited response carries ``RateLimit-Policy`` and ``RateLimit``
(draft-ietf-httpapi-ratelimit-headers) and ``X-RateLimit-Limit/-Remaining/-Reset``; a refusal is a
429 problem with ``Retry-After``. When the store is down a fail-closed tier answers 503.
"""

from __future__ import annotations

import math
import time

from bastion.core.edge.asgi import CONTEXT_KEY, ASGIApp, Receive, RequestContext, Scope, Send, send_problem
from bastion.core.errors import Banned, DependencyUnavailable, RateLimited
from bastion.core.principal import PrincipalResolver
from bastion.core.ratelimit import Decision, Limiter, Tier


class AdmissionMiddleware:
    def __init__(self, app: ASGIApp, *, limiter: Limiter | None, resolver: PrincipalResolver | None = None) -> None:
        self.app = app
        self.limiter = limiter
        self.resolver = resolver
        self._headers = {name: _TierHeaders(tier) for name, tier in (limiter.tiers if limiter else {}).items()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ctx: RequestContext = scope[CONTEXT_KEY]
        if self.resolver is not None and (ctx.authorization is not None or ctx.cookie is not None):
            ctx.principal = await self.resolver(scope, ctx)
        tier_name = ctx.policy.tier
        if self.limiter is None or tier_name is None:
            await self.app(scope, receive, send)
            return

        key = ctx.principal.rate_key if ctx.principal is not None else "ip:" + ctx.client
        verdict = await self.limiter.check(tier_name, key)
        decision = verdict.decision
        if decision is None:
            await send_problem(
                send,
                DependencyUnavailable(
                    "Rate limiting is unavailable and this endpoint does not run without it.",
                    retry_after=5,
                    extra={"tier": tier_name},
                ),
                ctx.request_id,
            )
            return

        headers = rate_headers(self._headers[tier_name], decision)
        if not decision.allowed:
            error: RateLimited
            if decision.banned:
                error = Banned(
                    "Too many requests over a sustained period; access is suspended.",
                    retry_after=decision.retry_after,
                    extra={"tier": tier_name},
                )
            else:
                error = RateLimited(
                    f"The {tier_name} limit is {verdict.tier.limit} requests per {verdict.tier.window} seconds.",
                    retry_after=decision.retry_after,
                    extra={"tier": tier_name},
                )
            for name, value in headers:
                error.headers.setdefault(name.decode(), value.decode())
            await send_problem(send, error, ctx.request_id)
            return

        ctx.response_headers.extend(headers)
        await self.app(scope, receive, send)


class _TierHeaders:
    """The parts of a tier's rate-limit headers that never change, encoded once."""

    __slots__ = ("limit", "policy", "prefix")

    def __init__(self, tier: Tier) -> None:
        self.policy = (b"ratelimit-policy", tier.policy_header)
        self.limit = (b"x-ratelimit-limit", str(tier.limit).encode())
        self.prefix = b'"' + tier.name.encode() + b'";r='


def rate_headers(static: _TierHeaders, decision: Decision) -> list[tuple[bytes, bytes]]:
    reset = math.ceil(decision.reset_after) if decision.reset_after > 0 else 0
    remaining = b"%d" % decision.remaining
    return [
        static.policy,
        (b"ratelimit", static.prefix + remaining + b";t=%d" % reset),
        static.limit,
        (b"x-ratelimit-remaining", remaining),
        (b"x-ratelimit-reset", b"%d" % math.ceil(time.time() + decision.reset_after)),
    ]
