"""Outbound HTTP: pooled httpx clients built once per worker, with explicit timeouts, closed at shutdown.

    client = platform.http.client("anthropic", base_url="https://api.anthropic.com",
                                  timeout=httpx.Timeout(30.0, connect=5.0))

Retries are not done here (``transport`` retries are off): callers retry with
:func:`bastion.core.resilience.retrying`, only what is transient and safe to repeat.
"""

from __future__ import annotations

import httpx

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=5.0, pool=5.0)
DEFAULT_LIMITS = httpx.Limits(max_connections=256, max_keepalive_connections=64, keepalive_expiry=30.0)


class HttpClients:
    def __init__(self) -> None:
        self._clients: dict[str, httpx.AsyncClient] = {}

    def client(
        self,
        name: str,
        *,
        base_url: str = "",
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        limits: httpx.Limits = DEFAULT_LIMITS,
        headers: dict[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> httpx.AsyncClient:
        """The client called ``name``, created on first use with these options."""
        found = self._clients.get(name)
        if found is None:
            found = httpx.AsyncClient(base_url=base_url, timeout=timeout, limits=limits, headers=headers,
                                      transport=transport, follow_redirects=False, trust_env=False)
            self._clients[name] = found
        return found

    async def close(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()
