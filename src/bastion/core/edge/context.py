"""Edge stage 1, request context: request id, timing, the real client address, and the headers the
later stages need, read in one pass. Its ``send`` wrapper is the one that adds headers other stages
put on ``ctx.response_headers`` (rate limits, CORS), and records the response status and size for the
telemetry stage: one wrapper for all of them instead of one per stage.

* An inbound ``X-Request-ID`` is kept only if it looks like an id (1-128 of ``A-Za-z0-9._:-``);
  otherwise one is generated. It is echoed on the response with ``X-Response-Time``.
* The client address is the socket peer, unless the peer is one of ``trusted_proxies``: then
  ``X-Forwarded-For`` is walked from the right, skipping trusted hops, and the first untrusted
  address is the client. A forwarded header from anybody else is ignored.
"""

from __future__ import annotations

import ipaddress
import itertools
import os
import re
import time
from collections.abc import Sequence
from typing import Any

from bastion.core.edge.asgi import CONTEXT_KEY, ASGIApp, Message, Receive, RequestContext, Scope, Send
from bastion.core.logging import request_id_var

_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:\-]{1,128}$")
_WANTED = {
    b"host",
    b"origin",
    b"content-type",
    b"content-length",
    b"authorization",
    b"cookie",
    b"x-request-id",
    b"x-forwarded-for",
}
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustedPeers:
    """Whether an address lies in the trusted proxy networks, remembered per address (at most 10,000: past
    that the memory starts again), so a steady client costs one dict look-up. The edge uses it to read
    ``X-Forwarded-For``, tracing to accept a caller's ``traceparent``."""

    __slots__ = ("_cache", "networks")

    def __init__(self, networks: Sequence[Network]) -> None:
        self.networks = tuple(networks)
        self._cache: dict[str, bool] = {}

    def __call__(self, address: str) -> bool:
        cached = self._cache.get(address)
        if cached is None:
            try:
                ip = ipaddress.ip_address(address)
            except ValueError:
                cached = False
            else:
                cached = any(ip in net for net in self.networks)
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[address] = cached
        return cached


class ContextMiddleware:
    def __init__(self, app: ASGIApp, *, trusted_proxies: Sequence[Network] = ()) -> None:
        self.app = app
        self.trusted = tuple(trusted_proxies)
        self._is_trusted = TrustedPeers(self.trusted)
        # Ids are a random per-process prefix and a counter: unique across workers and restarts,
        # and far cheaper than a uuid4 per request.
        self._id_prefix = os.urandom(6).hex()
        self._counter = itertools.count(1)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        start = time.perf_counter()
        found: dict[bytes, bytes] = {}
        size = 0
        for name, value in scope["headers"]:
            size += len(name) + len(value) + 4
            if name in _WANTED:
                if name == b"x-forwarded-for" and name in found:
                    found[name] += b"," + value
                else:
                    found[name] = value

        inbound_id = found.get(b"x-request-id")
        if inbound_id is not None and _REQUEST_ID.match(inbound_id):
            request_id = inbound_id.decode("ascii")
        else:
            request_id = f"{self._id_prefix}{next(self._counter):010x}"

        client_info = scope.get("client")
        peer = client_info[0] if client_info else ""
        client = peer
        forwarded = found.get(b"x-forwarded-for")
        if forwarded is not None and self.trusted and self._is_trusted(peer):
            client = self._forwarded_client(forwarded, peer)

        length_header = found.get(b"content-length")
        content_length: int | None = None
        if length_header is not None:
            try:
                content_length = int(length_header)
            except ValueError:
                content_length = -1  # rejected by the guards stage

        ctx = RequestContext(
            request_id=request_id,
            start=start,
            client=client,
            peer=peer,
            host=found.get(b"host", b""),
            origin=found.get(b"origin"),
            content_type=found.get(b"content-type"),
            content_length=content_length,
            authorization=found.get(b"authorization"),
            cookie=found.get(b"cookie"),
            header_bytes=size,
        )
        scope[CONTEXT_KEY] = ctx
        # Every request runs in its own task, so the value never leaks into another request's logs.
        request_id_var.set(request_id)
        id_header = (b"x-request-id", request_id.encode("ascii"))

        async def send_with_context(message: Message) -> None:
            if message["type"] == "http.response.body":
                ctx.response_bytes += len(message.get("body", b""))
            elif message["type"] == "http.response.start":
                ctx.status = message["status"]
                elapsed = (time.perf_counter() - start) * 1000.0
                headers: list[Any] = list(message.get("headers", ()))
                headers.extend(ctx.response_headers)
                headers.append(id_header)
                headers.append((b"x-response-time", b"%.3fms" % elapsed))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_context)

    def _forwarded_client(self, header: bytes, peer: str) -> str:
        client = peer
        for part in reversed(header.decode("latin-1").split(",")):
            candidate = part.strip()
            try:
                candidate = str(ipaddress.ip_address(candidate))
            except ValueError:
                break  # a malformed hop: believe nothing to its left
            client = candidate
            if not self._is_trusted(candidate):
                break
        return client
