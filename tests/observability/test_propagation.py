"""The trace of one message through an outbox row, RabbitMQ (the real broker) and a worker into the WhatsApp call,
and the status webhook linked to it: stand-in producer, relay and consumer using the core's propagation API, as the
messaging module will."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import aio_pika
from aiohttp import web
from litestar import post
from litestar.params import JSONBody

from bastion.core.http import classify_http
from bastion.core.module import Module, ModuleContext, ModuleParts
from bastion.core.observability import propagation
from bastion.core.upstream import Upstream, UpstreamSettings
from tests.conftest import eventually, free_port, serve
from tests.observability.otlp import OtlpReceiver

PHONE_ID = "106540352242922"


class FakeWhatsApp:
    """Meta's Cloud API send endpoint: ``POST /v21.0/{phone-number-id}/messages`` answered as Meta does."""

    def __init__(self) -> None:
        self.port = free_port()
        self.traceparents: list[str | None] = []

    async def send(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.traceparents.append(request.headers.get("traceparent"))
        return web.json_response(
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": body["to"], "wa_id": body["to"].lstrip("+")}],
                "messages": [{"id": f"wamid.{uuid.uuid4().hex}"}],
            }
        )

    async def __aenter__(self) -> FakeWhatsApp:
        app = web.Application()
        app.router.add_post("/v21.0/{phone_id}/messages", self.send)
        self.runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.runner.cleanup()


class StandIn:
    """What the messaging module will do, reduced to the calls that carry the trace."""

    def __init__(self, whatsapp_port: int) -> None:
        self.whatsapp_port = whatsapp_port
        self.outbox: list[dict[str, Any]] = []  # stands for the outbox table: the row keeps the carrier
        self.statuses: list[str] = []

    def module(self) -> Module[Any]:
        def build(ctx: ModuleContext[Any]) -> ModuleParts:
            settings = UpstreamSettings(timeout_seconds=5, retries=0)
            self.client = ctx.platform.http.for_upstream(
                "whatsapp-stand-in", settings, base_url=f"http://127.0.0.1:{self.whatsapp_port}"
            )
            self.upstream = Upstream("whatsapp", settings, classify_http)

            @post("/t/messages", status_code=202)
            async def queue_message(data: JSONBody[dict[str, str]]) -> dict[str, int]:
                row: dict[str, Any] = {"id": len(self.outbox) + 1, "to": data["to"], "text": data["text"]}
                row["trace"] = propagation.inject({})
                self.outbox.append(row)
                return {"id": row["id"]}

            @post("/t/whatsapp-status", status_code=200)
            async def status(data: JSONBody[dict[str, Any]]) -> dict[str, bool]:
                row = next(r for r in self.outbox if r["id"] == data["message"])
                with propagation.linked(row["trace"], "whatsapp.status", attributes={"whatsapp.status": "read"}):
                    self.statuses.append(data["status"])
                return {"ok": True}

            return ModuleParts(route_handlers=[queue_message, status])

        return Module(name="test-messaging", build=build)

    async def relay(self, channel: aio_pika.abc.AbstractChannel, queue: str) -> None:
        for row in self.outbox:
            attributes = {"messaging.system": "rabbitmq", "messaging.destination.name": queue}
            with propagation.continued(row["trace"], "messaging.publish", kind="producer", attributes=attributes):
                headers: dict[str, Any] = dict(propagation.inject({}))
                body = f'{{"id": {row["id"]}}}'.encode()
                await channel.default_exchange.publish(aio_pika.Message(body, headers=headers), routing_key=queue)

    async def handle(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        async with message.process():
            with propagation.continued(message.headers, "messaging.process", kind="consumer"):
                row = self.outbox[0]

                async def send() -> Any:
                    payload = {"messaging_product": "whatsapp", "to": row["to"], "text": {"body": row["text"]}}
                    response = await self.client.post(f"/v21.0/{PHONE_ID}/messages", json=payload)
                    return response.raise_for_status().json()

                row["wamid"] = (await self.upstream.call(send, retries=0))["messages"][0]["id"]


async def test_one_trace_spans_api_outbox_rabbitmq_worker_and_whatsapp_with_the_webhook_linked(make_app, amqp_url):
    """POST → outbox row → publish → RabbitMQ → consume → WhatsApp call are one trace; the status webhook's trace
    links to it."""
    queue_name = f"bastion-test-trace-{uuid.uuid4().hex}"
    async with OtlpReceiver() as receiver, FakeWhatsApp() as whatsapp:
        stand_in = StandIn(whatsapp.port)
        otel = {"endpoint": receiver.endpoint, "sample_ratio": 1.0, "schedule_delay_ms": 50}
        app = make_app(extra=(stand_in.module(),), otel=otel)
        connection = await aio_pika.connect_robust(amqp_url)
        try:
            async with serve(app) as http:
                channel = await connection.channel()
                queue = await channel.declare_queue(queue_name, auto_delete=True)
                queued = await http.post("/t/messages", json={"to": "+33612345678", "text": "hello"})
                assert queued.status_code == 202

                await stand_in.relay(channel, queue_name)  # the outbox relay (a job, in the messaging module)
                await queue.consume(stand_in.handle)  # the worker
                await eventually(lambda: "wamid" in stand_in.outbox[0], timeout=10)

                webhook = await http.post("/t/whatsapp-status", json={"message": 1, "status": "read"})
                assert webhook.status_code == 200
                await eventually(lambda: receiver.named("whatsapp.status"), timeout=10)
        finally:
            await connection.close()
        await asyncio.sleep(0)

    (api,) = receiver.named("POST /t/messages")
    trace = {s.span_id: s for s in receiver.spans if s.trace_id == api.trace_id}
    (publish,) = receiver.named("messaging.publish")
    (process,) = receiver.named("messaging.process")
    (call,) = receiver.named("upstream whatsapp")
    assert publish.trace_id == process.trace_id == call.trace_id == api.trace_id
    assert publish.parent_id == api.span_id and publish.kind == 4  # PRODUCER
    assert publish.attributes["messaging.destination.name"] == queue_name
    assert process.parent_id == publish.span_id and process.kind == 5  # CONSUMER
    assert call.parent_id == process.span_id
    assert [s.name for s in trace.values() if s.parent_id == call.span_id] == ["attempt"]
    assert whatsapp.traceparents[0] is not None and whatsapp.traceparents[0].split("-")[1] == api.trace_id

    (status,) = receiver.named("whatsapp.status")
    (status_request,) = receiver.named("POST /t/whatsapp-status")
    assert status.trace_id == status_request.trace_id != api.trace_id
    assert status.parent_id == status_request.span_id
    assert status.links == [(api.trace_id, api.span_id)]


def test_without_tracing_the_api_changes_nothing():
    """Off, inject leaves the carrier empty and continued/linked just run their block."""
    carrier: dict[str, str] = {}
    assert propagation.inject(carrier) == {}
    ran = []
    with propagation.continued({"traceparent": "garbage"}, "x"):
        ran.append("continued")
    with propagation.linked(None, "y"):
        ran.append("linked")
    assert ran == ["continued", "linked"]


async def test_a_malformed_carrier_starts_a_new_trace_and_bytes_headers_are_read():
    """A carrier with a garbage traceparent starts a root span and links nothing; AMQP-style bytes values work."""
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from bastion.core.observability import hooks
    from bastion.core.observability.settings import OtelSettings
    from bastion.core.observability.tracing import Tracing

    exporter = InMemorySpanExporter()
    tracing = Tracing(OtelSettings(endpoint="http://127.0.0.1:9", sample_ratio=1.0), version="t", exporter=exporter)
    hooks.install_tracing(tracing)
    try:
        with propagation.continued({"traceparent": "00-not-a-trace-01"}, "bad"):
            pass
        with propagation.linked({"traceparent": "garbage"}, "unlinked"):
            pass
        good = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        with propagation.continued({"traceparent": good}, "good"):
            pass
    finally:
        await tracing.close()
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert spans["bad"].parent is None and spans["unlinked"].links == ()
    assert spans["good"].parent is not None and spans["good"].parent.span_id == 0x00F067AA0BA902B7
    assert hooks.tracing is None
