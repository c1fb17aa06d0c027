"""Reference for the benchmarks: bare Litestar (the peers' ``litestar_bare``) answering with the same 21
response headers that Bastion adds to ``GET /hello``, added by one pure-ASGI wrapper, with none of the
work behind them (no request id, rate-limit decision, metrics or log line).

It measures what the headers alone cost the server, so that the ratio to bare Litestar which Bastion can
reach at most while sending them is measured rather than guessed. The values are the ones Bastion sends,
with fixed values of the same length where Bastion's change per request.
"""

from __future__ import annotations

from typing import Any

from litestar_bare import app as bare  # type: ignore[import-not-found]  # the peers' directory is on PYTHONPATH

HEADERS = [
    (name.encode(), value.encode())
    for name, value in (
        ("content-security-policy", "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        ("cross-origin-opener-policy", "same-origin"),
        ("cross-origin-resource-policy", "same-origin"),
        ("origin-agent-cluster", "?1"),
        ("x-dns-prefetch-control", "off"),
        ("x-download-options", "noopen"),
        ("x-permitted-cross-domain-policies", "none"),
        ("x-xss-protection", "0"),
        ("cache-control", "no-store"),
        ("strict-transport-security", "max-age=31536000; includeSubDomains"),
        ("server", "bastion"),
        ("ratelimit-policy", '"general";q=1000000000;w=1'),
        ("ratelimit", '"general";r=1000000000;t=0'),
        ("x-ratelimit-limit", "1000000000"),
        ("x-ratelimit-remaining", "1000000000"),
        ("x-ratelimit-reset", "1795480016"),
        ("x-request-id", "063f11fa21d30000000001"),
        ("x-response-time", "0.675ms"),
    )
]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        await bare(scope, receive, send)
        return

    async def send_with_headers(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", ()), *HEADERS]
        await send(message)

    await bare(scope, receive, send_with_headers)
