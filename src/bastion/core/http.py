"""Outbound HTTP over httpx, the default library for upstream clients: pooled clients built once per worker,
the classifier of httpx errors and HTTP statuses, and the Retry-After parser.

    settings = config.whatsapp.upstream                       # an UpstreamSettings (core/upstream.py)
    client = platform.http.for_upstream("whatsapp", settings, base_url="https://graph.facebook.com/v21.0",
                                        headers={"Authorization": f"Bearer {token}"})
    upstream = Upstream("whatsapp", settings, classify_http)

    async def send() -> dict[str, Any]:
        response = await client.post(f"/{phone_id}/messages", json=message)
        return response.raise_for_status().json()          # an error status is raised for the classifier

    sent = await upstream.call(send)

In tests, ``transport=httpx.MockTransport(handler)`` replaces the network with a handler speaking the
upstream's wire format. Retries are not done here (``transport`` retries are off): :class:`Upstream`
retries what :func:`classify_http` calls transient and safe to repeat:

=====================================================  =======  ==========================  =========
error                                                  failure  retried                     fall back
=====================================================  =======  ==========================  =========
connect error or timeout, pool timeout (never sent)    yes      yes                         yes
429, 503 (the upstream says it did not take it)        yes      yes, after its Retry-After  yes
other 5xx                                              yes      if safe to repeat           yes
read/write error or timeout, protocol error, drop      yes      if safe to repeat           yes
an answer that does not parse (``ValueError``)         yes      no                          yes
other 4xx, 3xx (the request's fault)                   no       no                          no
anything else (not the upstream's doing)               no       no                          no
=====================================================  =======  ==========================  =========

*Safe to repeat*: an idempotent method (GET, HEAD, OPTIONS, PUT, DELETE, TRACE) or a request carrying an
``Idempotency-Key`` (Stripe's way to make a POST safe). A POST without one that timed out or failed after
it was sent may have been acted on, so it is not repeated. httpx2 (the fork authlib and the openai SDK
prefer) raises the same exception tree; both are recognised.

Why httpx by default: one well-kept client, HTTP/1.1 and 2, and ``MockTransport`` for tests. The AI
gateway's providers use aiohttp instead, for a measured reason (see ``HttpSessions`` in
``bastion.ai.providers.base``): that choice is per upstream.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import math
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping, MutableMapping
from types import ModuleType
from typing import TYPE_CHECKING, Any

from bastion.core.upstream import UpstreamSettings, Verdict

if TYPE_CHECKING:
    # httpx is imported on the first client, not with the platform: a worker that never calls out (the
    # embedded default) does not carry it (about 2.6 MB of resident memory).
    import httpx

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
_HTTPX_FAMILY = ("httpx", "httpx2")


class HttpClients:
    """The pooled clients, one per name. ``inject`` (set when tracing is on) writes the current trace context into
    each outbound request's headers (W3C ``traceparent``), so an upstream that traces continues the trace."""

    def __init__(self, inject: Callable[[MutableMapping[str, str]], None] | None = None) -> None:
        self._clients: dict[str, httpx.AsyncClient] = {}
        self._inject = inject

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
        5 s to connect or to wait for a pooled connection; 256 connections, 64 kept alive for 30 s). Asking
        again for a name already taken with another base URL is a programming error (two callers would share one
        client and one would call the other's host), so it raises instead of answering the first client."""
        found = self._clients.get(name)
        if found is not None and base_url and str(found.base_url).rstrip("/") != base_url.rstrip("/"):
            raise ValueError(f"HTTP client {name!r} already exists for {found.base_url}, not {base_url}")
        if found is None:
            import httpx

            timeout = timeout or httpx.Timeout(30.0, connect=5.0, pool=5.0)
            limits = limits or httpx.Limits(max_connections=256, max_keepalive_connections=64, keepalive_expiry=30.0)
            hooks: dict[str, list[Any]] = {}
            if self._inject is not None:
                inject = self._inject

                async def add_trace_context(request: httpx.Request) -> None:
                    inject(request.headers)

                hooks["request"] = [add_trace_context]
            found = httpx.AsyncClient(
                event_hooks=hooks,
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

    def for_upstream(
        self,
        name: str,
        settings: UpstreamSettings,
        *,
        base_url: str = "",
        headers: dict[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> httpx.AsyncClient:
        """The client for the upstream ``name``, its timeouts and pool sized from its settings: each read
        within ``timeout_seconds``, connecting and waiting for a pooled connection within
        ``connect_timeout_seconds``, as many connections as the bulkhead lets calls in."""
        import httpx

        return self.client(
            name,
            base_url=base_url,
            timeout=httpx.Timeout(
                settings.timeout_seconds,
                connect=settings.connect_timeout_seconds,
                pool=settings.connect_timeout_seconds,
            ),
            limits=httpx.Limits(
                max_connections=settings.max_concurrent,
                max_keepalive_connections=min(settings.max_concurrent, 64),
                keepalive_expiry=30.0,
            ),
            headers=headers,
            transport=transport,
        )

    async def close(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()


class ResponseStream:
    """A streamed httpx response as an upstream :class:`~bastion.core.upstream.Stream` of byte chunks.

        stream = await upstream.open_stream(lambda: ResponseStream.open(client, client.build_request("GET", url)))
        async for chunk in stream: ...                     # a drop here is never retried
        await stream.aclose()                              # gives the bulkhead slot back

    Opened inside :meth:`Upstream.open_stream`, only the opening (up to the response headers) is retried.
    """

    __slots__ = ("response",)

    def __init__(self, response: httpx.Response) -> None:
        self.response = response

    @classmethod
    async def open(cls, client: httpx.AsyncClient, request: httpx.Request) -> ResponseStream:
        """Send ``request`` and return once a 2xx status has arrived; an error status raises
        ``HTTPStatusError`` (for the classifier) with the connection closed unread."""
        response = await client.send(request, stream=True)
        if response.is_success:
            return cls(response)
        await response.aclose()
        response.raise_for_status()
        raise AssertionError("unreachable: raise_for_status raises on a status that is not 2xx")

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self.response.aiter_bytes()

    async def aclose(self) -> None:
        await self.response.aclose()


def classify_http(exc: BaseException) -> Verdict:
    """The verdict on an error of an httpx (or httpx2) call; see the table in the module docstring."""
    for library in _loaded():
        if isinstance(exc, library.HTTPStatusError):
            response = exc.response
            return status_verdict(response.status_code, retry_after(response.headers), _repeatable(exc))
        if isinstance(exc, library.ConnectError | library.ConnectTimeout | library.PoolTimeout):
            return _NOT_SENT
        if isinstance(exc, library.TransportError):
            return _SENT_REPEATABLE if _repeatable(exc) else _SENT
        if isinstance(exc, library.HTTPError):  # decoding errors, too many redirects
            return _SENT
    if isinstance(exc, TimeoutError):  # the attempt's own timeout: it was sent and may be being acted on
        return _SENT
    if isinstance(exc, ValueError):  # an answer that does not parse (json.JSONDecodeError is one)
        return _SENT
    return _NOT_ITS_FAULT


def status_verdict(status: int, wait: float | None, repeatable: bool) -> Verdict:
    """The verdict on an error status: 429 and 503 say the request was not taken (retried, after ``wait``),
    other 5xx are retried only when ``repeatable``; any other status is the request's fault."""
    if status in (429, 503):
        return Verdict(failure=True, retry=True, fall_back=True, retry_after=wait)
    if status >= 500:
        return Verdict(failure=True, retry=repeatable, fall_back=True, retry_after=wait)
    return _NOT_ITS_FAULT


def is_timeout(exc: BaseException) -> bool:
    """Whether ``exc`` is a timeout: httpx's (or httpx2's) own, or an ``asyncio`` one (``TimeoutError``)."""
    return isinstance(exc, TimeoutError) or any(isinstance(exc, lib.TimeoutException) for lib in _loaded())


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds an upstream asks us to wait: ``retry-after-ms`` (OpenAI), or ``Retry-After`` as seconds or
    an HTTP date (RFC 9110 §10.2.3); None when it asks nothing (or nothing readable). ``headers`` must
    look names up without regard to case, as httpx's and aiohttp's do."""
    millis = _number(headers.get("retry-after-ms"))
    if millis is not None:
        return millis / 1000.0
    value = headers.get("retry-after")
    if value is None:
        return None
    seconds = _number(value)
    if seconds is not None:
        return seconds
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None  # neither seconds nor a date: no usable hint
    if parsed.tzinfo is None:  # "-0000": an HTTP date is GMT, never the local time
        parsed = parsed.replace(tzinfo=dt.UTC)
    return max(0.0, parsed.timestamp() - time.time())


def _number(text: str | None) -> float | None:
    """``text`` as a number of at least 0, or None when it is absent or not a (finite) number."""
    if text is None:
        return None
    try:
        number = float(text)
    except ValueError:
        return None
    return max(0.0, number) if math.isfinite(number) else None


_NOT_SENT = Verdict(failure=True, retry=True, fall_back=True)
_SENT = Verdict(failure=True, retry=False, fall_back=True)
_SENT_REPEATABLE = Verdict(failure=True, retry=True, fall_back=True)
_NOT_ITS_FAULT = Verdict(failure=False, retry=False, fall_back=False)
"""The request's fault (a 4xx), or not the upstream's doing at all (a bug of ours): every upstream would
answer the same, and its health is not in question."""


def _loaded() -> list[ModuleType]:
    """httpx and httpx2 as far as they are imported: an exception of a library nobody loaded cannot occur,
    and this module need not import either to find that out."""
    return [sys.modules[name] for name in _HTTPX_FAMILY if name in sys.modules]


def _repeatable(exc: Any) -> bool:
    """Whether the request that failed is safe to send again (see the module docstring)."""
    try:
        request = exc.request
    except RuntimeError:  # httpx raises it for an error that was never tied to a request
        return False
    return request.method in IDEMPOTENT_METHODS or "idempotency-key" in request.headers
