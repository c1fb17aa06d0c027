"""Edge stage 4, guards: cheap structural checks before any work is done for a request.

* a method outside the allow-list → 405 (with ``Allow``);
* a URL (path and query) longer than ``max_url_length`` (or the route group's own limit) → 414;
* request headers larger than ``max_header_bytes`` in total → 431;
* a body larger than the route group's limit → 413, at once from ``Content-Length``, or as soon as a
  chunked body passes the limit, without reading the rest;
* a body whose ``Content-Type`` the route does not take → 415 (JSON routes take ``application/json``
  and ``application/*+json``). Malformed JSON is a 400 raised where the body is decoded
  (``core/jsonbody.py``);
* a NUL (``%00``) in the path or query → 400: no text field accepts one, and PostgreSQL cannot store it;
* a body that stops arriving for ``body_idle_timeout`` or takes longer than ``body_timeout`` in all →
  408 with ``Connection: close``; one still arriving a second (``DRAIN_BODY_SECONDS``) after the worker
  starts draining → 503, so that a trickling client cannot hold the worker past the grace period.

The route group's policy is resolved here and stored on the request context for admission.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from bastion.core.edge.asgi import (
    CONTEXT_KEY,
    ASGIApp,
    Message,
    Receive,
    RequestContext,
    RoutePolicy,
    Scope,
    Send,
    find_header,
    send_problem,
)
from bastion.core.edge.routes import RouteTable
from bastion.core.errors import (
    AppError,
    BadRequest,
    HeadersTooLarge,
    MalformedBody,
    MethodNotAllowed,
    PayloadTooLarge,
    RequestTimeout,
    ShuttingDown,
    UnsupportedMediaType,
    UriTooLong,
)
from bastion.core.lifecycle import Lifecycle

DRAIN_BODY_SECONDS = 1.0
"""Once the worker drains, how much longer a body still arriving may take (then 503 ``SHUTTING_DOWN``)."""
_DRAINING = "The server is shutting down; send the request again elsewhere."
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class GuardsMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        routes: RouteTable,
        allowed_methods: Sequence[str],
        max_url_length: int = 2048,
        max_header_bytes: int = 8192,
        max_body_bytes: int = 1_048_576,
        lifecycle: Lifecycle | None = None,
        body_idle_timeout: float = 10.0,
        body_timeout: float = 60.0,
    ) -> None:
        self.app = app
        self.routes = routes
        self.methods = frozenset(allowed_methods)
        self.allow_header = ", ".join(allowed_methods)
        self.max_url = max_url_length
        self.max_headers = max_header_bytes
        self.max_body = max_body_bytes
        self.lifecycle = lifecycle
        self.body_idle_timeout = body_idle_timeout
        self.body_timeout = body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ctx: RequestContext = scope[CONTEXT_KEY]
        method: str = scope["method"]
        policy = ctx.policy = self.routes.resolve(method, scope["path"])

        error = self._check(scope, ctx, method, policy)
        if error is not None:
            await send_problem(send, error, ctx.request_id)
            return
        if method in _BODY_METHODS:
            receive = self._limited(receive, policy.max_body_bytes or self.max_body)
            receive = self._timed(receive)
        await self.app(scope, receive, send)

    def _check(self, scope: Scope, ctx: RequestContext, method: str, policy: RoutePolicy) -> AppError | None:
        if method not in self.methods:
            return MethodNotAllowed(f"{method} is not served here.", headers={"Allow": self.allow_header})
        url_length = len(scope.get("raw_path") or scope["path"]) + len(scope.get("query_string", b""))
        max_url = policy.max_url_length or self.max_url
        if url_length > max_url:
            return UriTooLong(f"The URL is longer than {max_url} bytes.")
        if b"%00" in (scope.get("raw_path") or b"") or b"%00" in scope.get("query_string", b""):
            return BadRequest("The URL contains a NUL character (%00), which no parameter accepts.")
        if ctx.header_bytes > self.max_headers:
            return HeadersTooLarge(f"Request headers exceed {self.max_headers} bytes.")
        if method not in _BODY_METHODS:
            return None
        length = ctx.content_length
        if length is not None and length < 0:
            return BadRequest("Content-Length is not a valid number.")
        limit = policy.max_body_bytes or self.max_body
        if length is not None and length > limit:
            return PayloadTooLarge(f"The body may be at most {limit} bytes.", extra={"max_bytes": limit})
        has_body = (length or 0) > 0 or (length is None and _chunked(scope))
        if has_body and policy.media_types and not _media_type_ok(ctx.content_type, policy.media_types):
            accepted = ", ".join(policy.media_types)
            return UnsupportedMediaType(f"Send the body as {accepted}.", extra={"accepted": list(policy.media_types)})
        return None

    @staticmethod
    def _limited(receive: Receive, limit: int) -> Receive:
        seen = 0

        async def receive_limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise PayloadTooLarge(f"The body may be at most {limit} bytes.", extra={"max_bytes": limit})
            return message

        return receive_limited

    def _timed(self, receive: Receive) -> Receive:
        """``receive`` cut off after ``body_idle_timeout`` of silence, ``body_timeout`` in all, or, once the worker
        drains, ``DRAIN_BODY_SECONDS`` later (a body already arrived is still read: only a waiting one is cut)."""
        lifecycle = self.lifecycle
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.body_timeout
        done = False

        def drain_deadline() -> float:
            return loop.time() + DRAIN_BODY_SECONDS

        async def receive_timed() -> Message:
            nonlocal done, deadline
            if done:
                return await receive()
            if lifecycle is not None and lifecycle.draining:
                deadline = min(deadline, drain_deadline())
            wait = min(self.body_idle_timeout, deadline - loop.time())
            try:
                async with asyncio.timeout(wait) as timer:
                    unsubscribe = None
                    if lifecycle is not None:
                        unsubscribe = lifecycle.subscribe(
                            lambda: timer.reschedule(min(timer.when() or drain_deadline(), drain_deadline()))
                        )
                    try:
                        message = await receive()
                    finally:
                        if unsubscribe is not None:
                            unsubscribe()
            except TimeoutError:
                if lifecycle is not None and lifecycle.draining:
                    raise _closing(ShuttingDown(_DRAINING)) from None
                raise _closing(RequestTimeout("The request body did not arrive in time.")) from None
            if message["type"] == "http.disconnect":
                # Mid-body: the client left, or the server found the body's framing invalid (granian reports a
                # bad chunk size this way), which Litestar would answer with a 500.
                raise _closing(MalformedBody("The body ended before it was complete, or its framing is invalid."))
            done = not message.get("more_body", False)
            return message

        return receive_timed


def _closing(error: AppError) -> AppError:
    error.headers["Connection"] = "close"
    return error


def _chunked(scope: Scope) -> bool:
    encoding = find_header(scope, b"transfer-encoding")
    return encoding is not None and b"chunked" in encoding.lower()


def _media_type_ok(content_type: bytes | None, accepted: Sequence[str]) -> bool:
    if content_type is None:
        return False
    media = content_type.split(b";", 1)[0].strip().lower().decode("latin-1")
    if media in accepted:
        return True
    return "application/json" in accepted and media.startswith("application/") and media.endswith("+json")
