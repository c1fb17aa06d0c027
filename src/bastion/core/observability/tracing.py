"""Opt-in traces with the official OpenTelemetry SDK, exported by OTLP over HTTP: imported only when
``BASTION_OTEL__ENDPOINT`` is set (``Platform.build``), so an app without it loads none of this.

    BASTION_OTEL__ENDPOINT=http://collector:4318   BASTION_OTEL__SAMPLE_RATIO=0.1

Spans, each a child of the one current when it starts:

* **a request** (``SERVER``), opened by the edge's telemetry stage: ``http.request.method``, ``http.route`` (the
  template, never the raw path), ``http.response.status_code``, ``bastion.principal.kind``, ``bastion.request_id``.
  An inbound W3C ``traceparent``/``tracestate`` is continued only from a peer in ``BASTION_TRUSTED_PROXIES``;
  anybody else's starts a new trace. The trace id goes on the access line (``trace_id``) and, as an exemplar,
  on the latency histogram.
* **a database statement** (``CLIENT``): ``db.system.name``, ``db.operation.name`` and the statement text
  (parameters are bound, so never in it; credential-shaped text is redacted as in the logs). An SQLAlchemy
  event listener per engine: OpenTelemetry's SQLAlchemy instrumentor is one per process, and tests (and an
  embedding app) build several apps, each with its own engine and tracer provider.
* **a fast-store call** (``CLIENT``): ``db.system.name`` (redis or memory) and the operation; never the key.
* **an upstream call** (``CLIENT``, from ``core/upstream.py``): ``bastion.upstream`` (the provider), what the
  caller adds (``gen_ai.request.model``), and one child per attempt with ``bastion.attempt`` and
  ``bastion.breaker.state``; its ``traceparent`` goes to the upstream on the httpx clients of ``core/http.py``.

Exceptions are recorded as their type only: their messages may carry what the logs redact.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from bastion.core.edge.asgi import RequestContext, Scope
from bastion.core.edge.context import Network, TrustedPeers
from bastion.core.logging import redact_text
from bastion.core.observability.settings import OtelSettings

_PROPAGATED = (b"traceparent", b"tracestate")
_propagator = TraceContextTextMapPropagator()
_NOT_SAMPLED = TraceFlags(TraceFlags.DEFAULT)
_LOW_64 = 2**64 - 1


class _EdgeTraceIds(RandomIdGenerator):
    """The SDK's random ids, except that the edge may hand over the trace id it drew for a request (and already
    knows the sampler keeps), so that one draw decides."""

    def __init__(self) -> None:
        self._handed = threading.local()

    def hand_over(self, trace_id: int) -> None:
        self._handed.trace_id = trace_id

    def generate_trace_id(self) -> int:
        found: int | None = getattr(self._handed, "trace_id", None)
        if found is None:
            return super().generate_trace_id()
        self._handed.trace_id = None
        return found


class RequestSpan:
    """The span of one request and the context token to put back when it ends."""

    __slots__ = ("span", "token")

    def __init__(self, span: Span, token: object) -> None:
        self.span = span
        self.token = token


class Tracing:
    """One app's tracer provider (its sampler, its exporter) and the spans the core opens with it."""

    def __init__(
        self,
        settings: OtelSettings,
        *,
        version: str,
        trusted_proxies: Sequence[Network] = (),
        exporter: SpanExporter | None = None,
    ) -> None:
        self.settings = settings
        self.trusted = tuple(trusted_proxies)
        self._is_trusted = TrustedPeers(self.trusted)
        resource = Resource.create({"service.name": settings.service_name, "service.version": version})
        self._ids = _EdgeTraceIds()
        self.provider = TracerProvider(
            resource=resource, sampler=ParentBased(TraceIdRatioBased(settings.sample_ratio)), id_generator=self._ids
        )
        if exporter is None:
            exporter = OTLPSpanExporter(
                endpoint=settings.traces_url,
                headers={k: v.get_secret_value() for k, v in settings.headers.items()},
                timeout=settings.timeout_seconds,
            )
        self.provider.add_span_processor(
            BatchSpanProcessor(
                exporter,
                max_queue_size=settings.max_queue_size,
                schedule_delay_millis=settings.schedule_delay_ms,
                export_timeout_millis=int(settings.timeout_seconds * 1000),
            )
        )
        self.tracer = self.provider.get_tracer("bastion", version)
        self._sample_bound = TraceIdRatioBased.get_bound_for_rate(settings.sample_ratio)

    # -- requests (the edge's telemetry stage) -----------------------------------------------------------------

    def start_request(self, scope: Scope, ctx: RequestContext) -> RequestSpan:
        parent = None
        if self.trusted and self._is_trusted(ctx.peer):
            carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"] if k in _PROPAGATED}
            if carrier:
                parent = _propagator.extract(carrier)
        method = scope["method"]
        span: Span
        trace_id = random.getrandbits(128) or 1
        if parent is None and trace_id & _LOW_64 >= self._sample_bound:
            # A new trace the ratio sampler drops (its test on the trace id, ``TraceIdRatioBased``), known without
            # the SDK's span machinery, which costs an unsampled request about 10 µs; the children still see a
            # valid, unsampled parent and are dropped too.
            span = NonRecordingSpan(SpanContext(trace_id, random.getrandbits(64) or 1, False, _NOT_SAMPLED))
        else:
            if parent is None:
                self._ids.hand_over(trace_id)  # the SDK's sampler then decides on this very id: sampled
            span = self.tracer.start_span(
                method, context=parent, kind=SpanKind.SERVER, attributes={"http.request.method": method}
            )
        return RequestSpan(span, otel_context.attach(trace.set_span_in_context(span, parent)))

    def finish_request(self, handle: RequestSpan, route: str, status: int, ctx: RequestContext) -> str | None:
        """End the request's span; its trace id when it is sampled (for the access line and the exemplar)."""
        span = handle.span
        try:
            if span.is_recording():
                span.update_name(f"{span.name} {route}")  # type: ignore[attr-defined]
                span.set_attributes(
                    {
                        "http.route": route,
                        "http.response.status_code": status,
                        "bastion.principal.kind": ctx.principal.kind if ctx.principal is not None else "anonymous",
                        "bastion.request_id": ctx.request_id,
                    }
                )
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR))
            span.end()
        finally:
            otel_context.detach(handle.token)  # type: ignore[arg-type]
        found = span.get_span_context()
        return trace.format_trace_id(found.trace_id) if found.trace_flags.sampled else None

    # -- spans the core opens around its own calls --------------------------------------------------------------

    @contextmanager
    def span(
        self,
        name: str,
        attributes: Mapping[str, Any],
        kind: SpanKind = SpanKind.CLIENT,
        *,
        parent: otel_context.Context | None = None,
        links: Sequence[trace.Link] = (),
    ) -> Iterator[Span]:
        """A child of ``parent`` (by default the current span), current inside the block; an exception marks it
        failed, by type only."""
        with self.tracer.start_as_current_span(
            name,
            context=parent,
            kind=kind,
            attributes=attributes,
            links=links,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                yield span
            except BaseException as exc:
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                span.set_attribute("error.type", type(exc).__name__)
                raise

    def inject(self, headers: MutableMapping[str, str]) -> None:
        """Write the current trace context (``traceparent``, ``tracestate``) into outbound headers."""
        _propagator.inject(headers)

    def extract(self, carrier: Mapping[str, Any] | None) -> otel_context.Context:
        """The trace context a message carries (``traceparent``/``tracestate``, str or bytes), or an empty one."""
        found: dict[str, str] = {}
        for key in ("traceparent", "tracestate"):
            value = carrier.get(key) if carrier is not None else None
            if isinstance(value, bytes):
                value = value.decode("latin-1")
            if isinstance(value, str):
                found[key] = value
        return _propagator.extract(found)

    def link_to(self, carrier: Mapping[str, Any] | None) -> list[trace.Link]:
        """A link to the span a message carries, if it carries a valid one."""
        found = trace.get_current_span(self.extract(carrier)).get_span_context()
        return [trace.Link(found)] if found.is_valid else []

    # -- the database ------------------------------------------------------------------------------------------

    def instrument_engine(self, engine: Any) -> None:
        """A span per statement on ``engine`` (an ``AsyncEngine`` or its sync engine)."""
        from sqlalchemy import event

        sync = getattr(engine, "sync_engine", engine)
        system = sync.dialect.name
        tracer = self.tracer

        def before(_conn: Any, _cursor: Any, statement: str, _params: Any, context: Any, _many: bool) -> None:
            operation = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else "SQL"
            span = tracer.start_span(f"db {operation}", kind=SpanKind.CLIENT)
            if span.is_recording():
                span.set_attributes(
                    {
                        "db.system.name": system,
                        "db.operation.name": operation,
                        "db.query.text": redact_text(statement[:2000]),
                    }
                )
            if context is not None:
                context._bastion_span = span

        def after(_conn: Any, _cursor: Any, _statement: str, _params: Any, context: Any, _many: bool) -> None:
            span = getattr(context, "_bastion_span", None)
            if span is not None:
                span.end()

        def failed(error_context: Any) -> None:
            span = getattr(error_context.execution_context, "_bastion_span", None)
            if span is not None:
                span.set_status(Status(StatusCode.ERROR, type(error_context.original_exception).__name__))
                span.end()

        event.listen(sync, "before_cursor_execute", before)
        event.listen(sync, "after_cursor_execute", after)
        event.listen(sync, "handle_error", failed)

    # -- lifetime ----------------------------------------------------------------------------------------------

    async def close(self) -> None:
        """Export what is queued (within the export timeout), in a thread, and stop."""
        import asyncio

        from bastion.core.observability import hooks

        if hooks.tracing is self:
            hooks.install_tracing(None)
        await asyncio.to_thread(self.provider.shutdown)
