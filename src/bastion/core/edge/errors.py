"""Edge stage 6, the error boundary: whatever escapes the app becomes a problem+json response.

Litestar's own exception handlers (see :mod:`bastion.core.problems`) render errors raised inside
route handlers; this stage catches what escapes them (an error while streaming, a bug in a
dependency) so that a client never sees a server's default page or a traceback. An unexpected
exception is logged once, with the request id and traceback; in production its text never reaches
the client. If the response had already started, the connection is closed instead (nothing else
is possible) and the error is still logged once.

It also bounds the response write: a piece of a streamed response, or one larger than ``_SMALL`` bytes
(which may not fit the socket's buffers), must be taken by the client within ``write_timeout`` seconds, or
the connection is closed (a slow reader cannot hold a worker). Small single-piece answers go out unwatched:
the kernel buffers them, and a timer on every response would cost the hot path.
"""

from __future__ import annotations

import asyncio

from bastion.core.edge.asgi import CONTEXT_KEY, ASGIApp, Message, Receive, RequestContext, Scope, Send, send_problem
from bastion.core.errors import AppError, ResponseWriteTimeout, headers_list, render_unexpected
from bastion.core.logging import get_logger
from bastion.core.observability.hooks import report_unexpected

log = get_logger("bastion.errors")
_SMALL = 65_536


class ErrorBoundaryMiddleware:
    def __init__(self, app: ASGIApp, *, production: bool, write_timeout: float = 30.0) -> None:
        self.app = app
        self.production = production
        self.write_timeout = write_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ctx: RequestContext = scope[CONTEXT_KEY]
        started = False

        async def send_tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            elif message.get("more_body", False) or len(message.get("body", b"")) > _SMALL:
                try:
                    async with asyncio.timeout(self.write_timeout):
                        await send(message)
                except TimeoutError:
                    raise ResponseWriteTimeout(f"The client took no data for {self.write_timeout} s.") from None
                return
            await send(message)

        try:
            await self.app(scope, receive, send_tracked)
        except asyncio.CancelledError:
            raise
        except AppError as error:
            if started:
                log.warning(
                    "error after the response started",
                    code=error.code,
                    detail=error.detail,
                    route=scope.get("path_template"),
                )
                return
            await send_problem(send, error, ctx.request_id)
        except Exception as exc:
            log.error("unhandled exception", route=scope.get("path_template"), method=scope["method"], exc_info=exc)
            report_unexpected(exc, scope)
            if started:
                return
            body = render_unexpected(exc, ctx.request_id, production=self.production)
            await send({"type": "http.response.start", "status": 500, "headers": headers_list(len(body), {})})
            await send({"type": "http.response.body", "body": body})
