"""A client that leaves cancels the upstream call within 100 ms, streaming or not; draining ends streams cleanly.

The disconnect tests run Bastion under uvicorn on a real socket and close the client's socket by hand, so
that the server sees exactly what a browser tab closing looks like; the fake upstream records when its
own client (Bastion) went away.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from prometheus_client import REGISTRY

from tests.ai.conftest import AUTH, CHAT, providers_for, service_of, sse_events
from tests.ai.fakes import Behaviour
from tests.conftest import serve

PATIENT = {"timeout_seconds": 30.0, "read_timeout_seconds": 30.0}


async def _open(base_url: str, body: dict[str, Any]) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    port = int(base_url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    payload = json.dumps(body).encode()
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Authorization: {AUTH['Authorization']}\r\nContent-Length: {len(payload)}\r\n\r\n"
    )
    writer.write(head.encode() + payload)
    await writer.drain()
    return reader, writer


def _cancelled(outcome_model: str = "fake-model") -> float:
    return (
        REGISTRY.get_sample_value(
            "bastion_ai_requests_total", {"provider": "fake", "model": outcome_model, "outcome": "cancelled"}
        )
        or 0.0
    )


async def test_disconnect_cancels_a_waiting_upstream_call(ai_app, upstream, live):
    """Closing the connection while the answer is awaited cancels the upstream request within 100 ms."""
    upstream.default = Behaviour(first_byte_delay=30)
    before = _cancelled()
    async with live(ai_app(providers=providers_for(upstream, **PATIENT))) as base:
        _reader, writer = await _open(base, CHAT)
        await upstream.wait_requests(1)
        closed_at = time.monotonic()
        writer.close()
        record = await upstream.wait_cancelled(timeout=5)
    assert record.cancelled_at is not None
    assert record.cancelled_at - closed_at < 0.1, f"upstream noticed after {record.cancelled_at - closed_at:.3f}s"
    assert _cancelled() == before + 1


async def test_disconnect_cancels_a_stream_before_its_first_byte(ai_app, upstream, live):
    """A stream request whose upstream has not answered yet is cancelled too when the client leaves."""
    upstream.default = Behaviour(first_byte_delay=30)
    async with live(ai_app(providers=providers_for(upstream, **PATIENT))) as base:
        _reader, writer = await _open(base, {**CHAT, "stream": True})
        await upstream.wait_requests(1)
        closed_at = time.monotonic()
        writer.close()
        record = await upstream.wait_cancelled(timeout=5)
    assert record.cancelled_at - closed_at < 0.1, f"upstream noticed after {record.cancelled_at - closed_at:.3f}s"


async def test_disconnect_mid_stream_cancels_the_upstream_stream(ai_app, upstream, live):
    """Closing the connection mid-stream closes the upstream stream within 100 ms."""
    upstream.default = Behaviour(stall_after=2)
    async with live(ai_app(providers=providers_for(upstream, **PATIENT))) as base:
        reader, writer = await _open(base, {**CHAT, "stream": True})
        seen = b""
        async with asyncio.timeout(5):
            while b'"content":"!"' not in seen:
                seen += await reader.read(4096)
        closed_at = time.monotonic()
        writer.close()
        record = await upstream.wait_cancelled(timeout=5)
    assert record.cancelled_at - closed_at < 0.1, f"upstream noticed after {record.cancelled_at - closed_at:.3f}s"


async def test_drain_ends_open_streams_with_an_error_event_and_done(ai_app, upstream):
    """When the worker drains, an open stream gets a SHUTTING_DOWN error event and [DONE], and its
    upstream call is closed."""
    upstream.default = Behaviour(stall_after=1)
    app = ai_app(providers=providers_for(upstream, **PATIENT))
    async with serve(app) as http:
        pending = asyncio.ensure_future(http.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=AUTH))
        await upstream.wait_requests(1)
        app.platform.lifecycle.begin_drain()
        async with asyncio.timeout(5):
            response = await pending
        await upstream.wait_cancelled()
    events = sse_events(response.text)
    assert events[-1] == (None, "[DONE]")
    assert events[-2][0] == "error"
    assert json.loads(events[-2][1])["error"]["code"] == "SHUTTING_DOWN"


async def test_stream_that_never_starts_still_closes_its_upstream(ai_app, upstream):
    """A stream opened while the worker drains ends at once with the shutdown events, and the upstream
    response it had opened is closed (its bulkhead slot freed), though its body was never read."""
    upstream.default = Behaviour(stall_after=0)
    app = ai_app(providers=providers_for(upstream, **PATIENT))
    async with serve(app) as http:
        app.platform.lifecycle.begin_drain()
        response = await http.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=AUTH)
        await upstream.wait_cancelled()
        slots = service_of(app).upstreams["fake"].bulkhead.active
    assert [e for e, _ in sse_events(response.text)] == ["error", None]
    assert slots == 0
