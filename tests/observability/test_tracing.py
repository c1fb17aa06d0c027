"""Opt-in traces: one trace per request with its database, store and upstream calls, exported by OTLP/HTTP to a
local receiver; W3C traceparent continued from trusted proxies only and sent to upstreams; trace ids on the
access line and as exemplars."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from litestar import get
from litestar.di import NamedDependency
from sqlalchemy import text

from bastion.core.http import classify_http
from bastion.core.module import Module, ModuleContext, ModuleParts
from bastion.core.platform import Platform
from bastion.core.upstream import Upstream, UpstreamSettings
from tests.conftest import eventually, free_port, serve
from tests.observability.otlp import OtlpReceiver
from tests.support import routes_module

INBOUND_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
INBOUND_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{INBOUND_TRACE}-{INBOUND_SPAN}-01"


class FakeProvider:
    """An upstream that answers 503 once, then 200, and keeps the traceparent of each request."""

    def __init__(self) -> None:
        self.port = free_port()
        self.traceparents: list[str | None] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.traceparents.append(request.headers.get("traceparent"))
        if len(self.traceparents) == 1:
            return web.json_response({"error": "busy"}, status=503)
        return web.json_response({"ok": True})

    async def __aenter__(self) -> FakeProvider:
        app = web.Application()
        app.router.add_get("/v1/things", self.handle)
        self.runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.runner.cleanup()


def _traced_module(provider_port: int) -> Module[Any]:
    def build(ctx: ModuleContext[Any]) -> ModuleParts:
        settings = UpstreamSettings(timeout_seconds=5, retries=2, max_retry_wait_seconds=0.01)
        client = ctx.platform.http.for_upstream("fakeprov", settings, base_url=f"http://127.0.0.1:{provider_port}")
        upstream = Upstream("fakeprov", settings, classify_http)
        store = ctx.store

        @get("/t/traced")
        async def traced(platform: NamedDependency[Platform]) -> dict[str, Any]:
            async with platform.db.session() as session:
                one = (await session.execute(text("SELECT 1"))).scalar_one()
            await store.set("k", b"v", ttl=60)
            await store.get("k")

            async def fetch() -> Any:
                response = await client.get("/v1/things")
                return response.raise_for_status().json()

            answer = await upstream.call(fetch, attributes={"gen_ai.request.model": "model-x"})
            return {"db": one, "upstream": answer}

        return ModuleParts(route_handlers=[traced])

    return Module(name="test-traced", build=build)


def _otel(receiver: OtlpReceiver, ratio: float = 1.0) -> dict[str, Any]:
    return {"endpoint": receiver.endpoint, "sample_ratio": ratio, "schedule_delay_ms": 50}


async def test_a_request_is_one_trace_with_its_database_store_and_upstream_calls(make_app, logs):
    """The server span has route, status and principal kind; the db, store and upstream spans (two attempts, the
    model, the breaker state) are its children in the same trace; the upstream got that trace's traceparent."""
    async with OtlpReceiver() as receiver, FakeProvider() as provider:
        app = make_app(extra=(routes_module, _traced_module(provider.port)), otel=_otel(receiver))
        async with serve(app) as http:
            response = await http.get("/t/traced")
            assert response.status_code == 200, response.text
            await eventually(lambda: receiver.named("upstream fakeprov"), timeout=10)

    (server,) = receiver.named("GET /t/traced")
    assert server.kind == 2  # SERVER
    assert server.attributes["http.route"] == "/t/traced"
    assert server.attributes["http.response.status_code"] == 200
    assert server.attributes["bastion.principal.kind"] == "anonymous"
    assert server.service == "bastion"
    trace = [s for s in receiver.spans if s.trace_id == server.trace_id]
    by_id = {s.span_id: s for s in trace}

    db = [s for s in trace if s.name == "db SELECT"]
    assert db and db[0].parent_id == server.span_id and db[0].attributes["db.query.text"] == "SELECT 1"
    store_ops = {s.attributes["db.operation.name"] for s in trace if s.name.startswith("store ")}
    assert {"set", "get"} <= store_ops
    assert all("k" not in str(s.attributes.values()) for s in trace if s.name.startswith("store "))

    (call,) = [s for s in trace if s.name == "upstream fakeprov"]
    assert call.parent_id == server.span_id
    assert call.attributes["gen_ai.request.model"] == "model-x"
    attempts = sorted((s for s in trace if s.name == "attempt"), key=lambda s: s.attributes["bastion.attempt"])
    assert [a.attributes["bastion.attempt"] for a in attempts] == [1, 2]
    assert all(a.parent_id == call.span_id and a.attributes["bastion.breaker.state"] == "closed" for a in attempts)
    assert attempts[0].status_code == 2  # ERROR: the 503

    # what the upstream received: the trace, with an attempt's span (or the httpx call under it) as parent
    sent = [tp for tp in provider.traceparents if tp]
    assert len(sent) == 2 and all(tp.split("-")[1] == server.trace_id for tp in sent)
    assert {tp.split("-")[2] for tp in sent} <= set(by_id)

    access = [line for line in logs() if line.get("event") == "request" and line.get("route") == "/t/traced"]
    assert access[0]["trace_id"] == server.trace_id


async def test_a_trusted_proxy_continues_the_callers_trace(make_app):
    """A traceparent from a peer in BASTION_TRUSTED_PROXIES is continued: same trace id, its span as parent."""
    async with OtlpReceiver() as receiver:
        app = make_app(otel=_otel(receiver, ratio=0.0), trusted_proxies=["198.51.100.0/24"])
        async with serve(app) as http:  # the test client is 198.51.100.7
            await http.get("/t/slow", params={"seconds": 0}, headers={"traceparent": TRACEPARENT})
            await eventually(lambda: receiver.named("GET /t/slow"), timeout=10)
    (server,) = receiver.named("GET /t/slow")
    assert server.trace_id == INBOUND_TRACE and server.parent_id == INBOUND_SPAN  # sampled by the caller's flag


async def test_an_untrusted_callers_traceparent_is_ignored(make_app):
    """From any other peer the traceparent is ignored: a new trace, a root span."""
    async with OtlpReceiver() as receiver:
        app = make_app(otel=_otel(receiver), trusted_proxies=["10.0.0.0/8"])
        async with serve(app) as http:
            await http.get("/t/slow", params={"seconds": 0}, headers={"traceparent": TRACEPARENT})
            await eventually(lambda: receiver.named("GET /t/slow"), timeout=10)
    (server,) = receiver.named("GET /t/slow")
    assert server.trace_id != INBOUND_TRACE and server.parent_id == ""


async def test_sampling_zero_exports_nothing_and_logs_no_trace_id(make_app, logs):
    """At sample ratio 0 no span leaves and the access line has no trace id."""
    async with OtlpReceiver() as receiver, serve(make_app(otel=_otel(receiver, ratio=0.0))) as http:
        for _ in range(20):
            await http.get("/health")
    assert receiver.spans == []
    lines = [line for line in logs() if line.get("event") == "request"]
    assert lines and all("trace_id" not in line for line in lines)


async def test_the_latency_histogram_carries_the_trace_id_as_exemplar(make_app, logs):
    """/metrics in the OpenMetrics format shows the request's trace id on its latency bucket."""
    async with OtlpReceiver() as receiver, serve(make_app(otel=_otel(receiver))) as http:
        await http.get("/t/slow", params={"seconds": 0.0})
        metrics = await http.get("/metrics", headers={"accept": "application/openmetrics-text; version=1.0.0"})
    trace_id = next(line["trace_id"] for line in logs() if line.get("route") == "/t/slow")
    assert metrics.headers["content-type"].startswith("application/openmetrics-text")
    exemplars = [
        line
        for line in metrics.text.splitlines()
        if line.startswith("bastion_http_request_duration_seconds_bucket") and 'route="/t/slow"' in line and "#" in line
    ]
    assert any(f'trace_id="{trace_id}"' in line for line in exemplars)


async def test_the_sample_ratio_holds_for_new_traces():
    """At ratio 0.25 about a quarter of new request traces are recorded (one draw decides: the edge's fast path for
    dropped traces and the SDK's sampler agree on the trace id)."""
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from bastion.core.edge.asgi import RequestContext
    from bastion.core.observability.settings import OtelSettings
    from bastion.core.observability.tracing import Tracing

    exporter = InMemorySpanExporter()
    settings = OtelSettings(endpoint="http://127.0.0.1:9", sample_ratio=0.25, max_queue_size=10_000)
    tracing = Tracing(settings, version="t", exporter=exporter)
    scope = {"method": "GET", "headers": [], "path_template": "/x"}
    ctx = RequestContext("rid", 0.0, "192.0.2.1", "192.0.2.1")
    logged = [tracing.finish_request(tracing.start_request(scope, ctx), "/x", 200, ctx) for _ in range(4000)]
    await tracing.close()
    recorded = exporter.get_finished_spans()
    assert 800 <= len(recorded) <= 1200
    assert sorted(f"{s.context.trace_id:032x}" for s in recorded) == sorted(t for t in logged if t is not None)


async def test_a_dead_collector_slows_no_request_and_no_shutdown(make_app):
    """Connection refused at the collector: requests are as fast as ever and the app stops within seconds."""
    import statistics
    import time

    otel = {"endpoint": f"http://127.0.0.1:{free_port()}", "sample_ratio": 1.0, "schedule_delay_ms": 50}
    otel["timeout_seconds"] = 1
    app = make_app(otel=otel)
    durations = []
    async with serve(app) as http:
        for _ in range(50):
            started = time.perf_counter()
            assert (await http.get("/t/slow", params={"seconds": 0})).status_code == 200
            durations.append(time.perf_counter() - started)
        stopping = time.perf_counter()
    assert time.perf_counter() - stopping < 4.0
    assert statistics.median(durations) < 0.05 and max(durations) < 0.5
