"""Outbound HTTP: pooled httpx clients built once per worker, with explicit timeouts, closed at shutdown.

    client = platform.http.client("anthropic", base_url="https://api.anthropic.com",
                                  timeout=httpx.Timeout(30.0, connect=5.0))

Retries are not done here (``transport`` retries are off): callers retry with
:func:`bastion.core.resilience.retrying`, only what is transient and safe to repeat.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    # httpx is imported on the first client, not with the platform: a worker that never calls out (the
    # embedded default) does not carry it (about 2.6 MB of resident memory).
    import httpx


class HttpClients:
    def __init__(self) -> None:
        self._clients: dict[str, httpx.AsyncClient] = {}

    def client(
        self,
        name: str,
        *,
        base_url: str = "",
        timeout: httpx.Timeout | None = None,
        limits: httpx.Limits | None = None,
        headers: dict[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> httpx.AsyncClient:
        """The client called ``name``, created on first use with these options (by default 30 s per call,
        5 s to connect or to wait for a pooled connection; 256 connections, 64 kept alive for 30 s)."""
        found = self._clients.get(name)
        if found is None:
            import httpx

            timeout = timeout or httpx.Timeout(30.0, connect=5.0, pool=5.0)
            limits = limits or httpx.Limits(max_connections=256, max_keepalive_connections=64, keepalive_expiry=30.0)
            found = httpx.AsyncClient(
                base_url=base_url,
                timeout=timeout,
                limits=limits,
                headers=headers,
                transport=transport,
                follow_redirects=False,
                trust_env=False,
            )
            self._clients[name] = found
        return found

    async def close(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()
