"""Carrying a trace through work that leaves the request: an outbox row, a queue message, a later webhook.

A module calls these whether tracing is on or not: off, each is one test and the carrier stays as it was.

    # producer, in the request's transaction: the row remembers the request's trace
    row.trace = propagation.inject({})                                   # {"traceparent": "00-…-01"} or {}

    # relay (outbox → broker), a background job: continue the row's trace, hand it on in the message headers
    with propagation.continued(row.trace, "messaging.publish", kind="producer", attributes={
            "messaging.system": "rabbitmq", "messaging.destination.name": queue}):
        await exchange.publish(aio_pika.Message(body, headers=propagation.inject({})), routing_key=queue)

    # consumer (the worker): continue the message's trace; upstream calls inside it are its children
    async with message.process():
        with propagation.continued(message.headers, "messaging.process", kind="consumer"):
            await whatsapp.send(...)                                      # Upstream.call: spans + traceparent

    # a later event about the same work (a status webhook): its own trace, linked to the message's
    with propagation.linked(row.trace, "whatsapp.status"):
        ...

Carriers are plain dicts of strings (W3C ``traceparent`` and ``tracestate``); AMQP headers may hold bytes, which
are read too. A carrier that is missing, empty or malformed starts a new trace (``continued``) or links nothing
(``linked``). Nothing but those two W3C fields is written: no baggage, no ids of ours.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import Any, Literal

from bastion.core.observability import hooks

Kind = Literal["producer", "consumer", "internal"]
Attributes = Mapping[str, str | int | float | bool]


def inject(carrier: MutableMapping[str, str]) -> MutableMapping[str, str]:
    """Write the current trace context into ``carrier`` (a message's headers, an outbox row's field) and return it."""
    tracing = hooks.tracing
    if tracing is not None:
        tracing.inject(carrier)
    return carrier


@contextmanager
def continued(
    carrier: Mapping[str, Any] | None, name: str, *, kind: Kind = "consumer", attributes: Attributes | None = None
) -> Iterator[None]:
    """A span for handling a message, a child of the span the carrier names; current inside the block."""
    tracing = hooks.tracing
    if tracing is None:
        yield
        return
    from opentelemetry.trace import SpanKind

    span_kind = {"producer": SpanKind.PRODUCER, "consumer": SpanKind.CONSUMER}.get(kind, SpanKind.INTERNAL)
    with tracing.span(name, attributes or {}, span_kind, parent=tracing.extract(carrier)):
        yield


@contextmanager
def linked(carrier: Mapping[str, Any] | None, name: str, *, attributes: Attributes | None = None) -> Iterator[None]:
    """A span in the current trace (a webhook's request) with a link to the trace the carrier names."""
    tracing = hooks.tracing
    if tracing is None:
        yield
        return
    from opentelemetry.trace import SpanKind

    with tracing.span(name, attributes or {}, SpanKind.INTERNAL, links=tracing.link_to(carrier)):
        yield


def aiohttp_trace_configs() -> list[Any]:
    """For ``aiohttp.ClientSession(trace_configs=...)``: send the current trace context (``traceparent``) with each
    request, as the httpx clients of ``core/http.py`` do; ``[]`` when tracing is off (aiohttp is imported only when
    it is on)."""
    tracing = hooks.tracing
    if tracing is None:
        return []
    import aiohttp

    async def add_trace_context(_session: Any, _context: Any, params: aiohttp.TraceRequestStartParams) -> None:
        tracing.inject(params.headers)  # the headers the request is then built from

    config = aiohttp.TraceConfig()
    config.on_request_start.append(add_trace_context)
    return [config]
