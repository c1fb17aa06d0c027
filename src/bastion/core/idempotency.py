"""Idempotency-Key for POST routes: a retried request gets the first response instead of a second effect.

    @post("/api/secrets", middleware=[IdempotencyMiddleware])
    async def create(...): ...

With an ``Idempotency-Key`` header (1-255 visible ASCII characters), the first request claims the
key in the fast store (atomic ``set_if_absent``) and runs; its response (status, headers, body) is
stored under the key for ``idempotency_ttl_seconds``. A later request with the same key:

* and the same method, path and body → the stored response, with ``Idempotent-Replayed: true``;
* and a different body → 422 ``IDEMPOTENCY_KEY_REUSED``;
* while the first is still running → 409 ``IDEMPOTENCY_IN_PROGRESS`` with Retry-After.

Keys are scoped to the caller (principal, else client address). A 5xx response is not stored (the
key is released so the client may retry). If the store is down, a request that carries a key is
refused with 503 rather than run without the guarantee it asked for.
"""

from __future__ import annotations

import hashlib
import re

import msgspec

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
from bastion.core.errors import (
    BadRequest,
    DependencyUnavailable,
    IdempotencyInProgress,
    IdempotencyKeyReused,
)
from bastion.core.stores.base import Store, StoreUnavailable

_KEY = re.compile(rb"^[\x21-\x7e]{1,255}$")
PENDING_SECONDS = 60.0
MAX_STORED_BODY = 1_048_576


class _Record(msgspec.Struct, array_like=True):
    fingerprint: str
    status: int = 0
    headers: list[tuple[bytes, bytes]] = []
    body: bytes = b""


_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(_Record).decode
_SKIP_HEADERS = frozenset(
    {
        b"content-length",
        b"x-request-id",
        b"x-response-time",
        b"date",
        b"ratelimit",
        b"x-ratelimit-remaining",
        b"x-ratelimit-reset",
    }
)


class IdempotencyMiddleware:
    """Litestar route middleware; it finds the store at ``app.state.platform.store``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        header = find_header(scope, b"idempotency-key")
        if scope["type"] != "http" or header is None:
            await self.app(scope, receive, send)
            return
        ctx: RequestContext = scope[CONTEXT_KEY]
        if not _KEY.match(header):
            await send_problem(
                send, BadRequest("Idempotency-Key must be 1-255 visible ASCII characters."), ctx.request_id
            )
            return
        platform = scope["litestar_app"].state.platform
        store: Store = platform.store
        ttl: float = platform.settings.idempotency_ttl_seconds

        body = await _read_body(receive)
        who = ctx.principal.rate_key if ctx.principal is not None else "ip:" + ctx.client
        digest = hashlib.sha256(
            scope["method"].encode()
            + b" "
            + scope["path"].encode()
            + b"?"
            + scope.get("query_string", b"")
            + b"\n"
            + body
        ).hexdigest()
        key = "idem:" + hashlib.sha256(f"{who}\n{scope['path']}\n".encode() + header).hexdigest()

        try:
            claimed = await store.set_if_absent(key, _encode(_Record(digest)), ttl=PENDING_SECONDS)
            existing = None if claimed else await store.get(key)
        except StoreUnavailable:
            await send_problem(
                send,
                DependencyUnavailable("Idempotency records are unavailable; retry shortly.", retry_after=2),
                ctx.request_id,
            )
            return

        if not claimed:
            await self._answer_existing(send, ctx, existing, digest)
            return

        await self._run_and_store(scope, body, send, store, key, digest, ttl)

    async def _answer_existing(self, send: Send, ctx: RequestContext, raw: bytes | None, digest: str) -> None:
        record = _decode(raw) if raw else None
        if record is None or record.status == 0:
            if record is not None and record.fingerprint != digest:
                await send_problem(
                    send, IdempotencyKeyReused("This Idempotency-Key was used for a different request."), ctx.request_id
                )
                return
            await send_problem(
                send,
                IdempotencyInProgress("The first request with this Idempotency-Key has not finished.", retry_after=1),
                ctx.request_id,
            )
            return
        if record.fingerprint != digest:
            await send_problem(
                send, IdempotencyKeyReused("This Idempotency-Key was used for a different request."), ctx.request_id
            )
            return
        headers = [
            *record.headers,
            (b"content-length", str(len(record.body)).encode()),
            (b"idempotent-replayed", b"true"),
        ]
        await send({"type": "http.response.start", "status": record.status, "headers": headers})
        await send({"type": "http.response.body", "body": record.body})

    async def _run_and_store(
        self, scope: Scope, body: bytes, send: Send, store: Store, key: str, digest: str, ttl: float
    ) -> None:
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if delivered:
                return {"type": "http.disconnect"}
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        status = 0
        headers: list[tuple[bytes, bytes]] = []
        chunks: list[bytes] = []
        size = 0

        async def capture(message: Message) -> None:
            nonlocal status, headers, size
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [
                    (bytes(k), bytes(v)) for k, v in message.get("headers", ()) if bytes(k).lower() not in _SKIP_HEADERS
                ]
            elif message["type"] == "http.response.body" and size <= MAX_STORED_BODY:
                chunk = message.get("body", b"")
                size += len(chunk)
                chunks.append(chunk)
            await send(message)

        try:
            await self.app(scope, replay, capture)
        except BaseException:
            await _release(store, key)
            raise
        if status >= 500 or status == 0 or size > MAX_STORED_BODY:
            await _release(store, key)
            return
        record = _Record(digest, status, headers, b"".join(chunks))
        try:
            await store.set(key, _encode(record), ttl=ttl)
        except StoreUnavailable:
            await _release(store, key)


async def _release(store: Store, key: str) -> None:
    try:
        await store.delete(key)
    except StoreUnavailable:
        return  # the pending claim expires by itself after PENDING_SECONDS


async def _read_body(receive: Receive) -> bytes:
    parts: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(parts)
