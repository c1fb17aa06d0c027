"""Edge stage 2, telemetry: one access-log line and the RED metrics per request, and the in-flight count
that graceful shutdown waits on. (The status and size of the response are recorded on the request
context by the context stage, which already wraps ``send``; a second wrapper here would cost every
response message another call.)

The line carries request_id, method, route (the template, never the raw path, which may hold ids or
tokens), status, duration_ms, client, principal and response bytes; it is a warning when the
request took longer than ``slow_request_ms``.

With tracing on (``BASTION_OTEL__ENDPOINT``), this stage opens the request's span (``observability/tracing.py``)
and ends it with the route template, status and principal kind; a sampled request's trace id goes on the line
(``trace_id``) and on the latency histogram as an exemplar. Off, ``tracing`` is None and costs one test.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from bastion.core.edge.asgi import CONTEXT_KEY, ASGIApp, Receive, RequestContext, Scope, Send
from bastion.core.lifecycle import Lifecycle
from bastion.core.logging import access_log
from bastion.core.metrics import HttpMetrics

if TYPE_CHECKING:
    from bastion.core.observability.tracing import RequestSpan, Tracing

UNMATCHED = "<unmatched>"


class TelemetryMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        lifecycle: Lifecycle,
        metrics: HttpMetrics,
        slow_request_ms: float = 1000.0,
        tracing: Tracing | None = None,
    ) -> None:
        self.app = app
        self.tracing = tracing
        self.lifecycle = lifecycle
        self.metrics = metrics
        self.slow_ms = slow_request_ms

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ctx: RequestContext = scope[CONTEXT_KEY]
        self.lifecycle.request_started()
        span = self.tracing.start_request(scope, ctx) if self.tracing is not None else None
        try:
            await self.app(scope, receive, send)
        finally:
            self.lifecycle.request_finished()
            self._record(scope, ctx, span)

    def _record(self, scope: Scope, ctx: RequestContext, span: RequestSpan | None) -> None:
        seconds = time.perf_counter() - ctx.start
        status = ctx.status or 500  # nothing was sent: the server will answer 500 or drop the line
        route: Any = scope.get("path_template") or UNMATCHED
        method = scope["method"]
        trace_id = None
        if span is not None and self.tracing is not None:
            trace_id = self.tracing.finish_request(span, route, status, ctx)
        self.metrics.observe(method, route, status, seconds, trace_id)
        duration_ms = round(seconds * 1000.0, 3)
        principal = ctx.principal.rate_key if ctx.principal is not None else None
        fields = {
            "request_id": ctx.request_id,
            "method": method,
            "route": route,
            "status": status,
            "duration_ms": duration_ms,
            "client": ctx.client,
            "principal": principal,
            "bytes": ctx.response_bytes,
        }
        if trace_id is not None:
            fields["trace_id"] = trace_id
        access_log.emit(fields, slow=duration_ms >= self.slow_ms)
