"""Core's one way to call an upstream (``core/upstream.py``) with the httpx classifier (``core/http.py``),
against ``httpx.MockTransport`` handlers speaking HTTP: retries, Retry-After, the request's own faults, the
circuit breaker, the bulkhead, timeouts, drops after the first byte, and the per-upstream metrics.

stamina is in test mode (tests/conftest.py): retries do not wait, and a retried call gets 3 attempts.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from bastion.core.errors import BulkheadFull, CircuitOpen
from bastion.core.http import HttpClients, ResponseStream, classify_http, retry_after
from bastion.core.resilience import State
from bastion.core.upstream import Held, Upstream, UpstreamSettings, Verdict

Reply = httpx.Response | Exception | Callable[[httpx.Request], Awaitable[httpx.Response]]


class FakeApi:
    """An HTTP API behind ``httpx.MockTransport``: answers each request with the next scripted reply (a
    response, an exception to raise as the network would, or an async function of the request), then
    with ``default``; records what it received."""

    def __init__(self, *script: Reply, default: Reply | None = None) -> None:
        self.script = list(script)
        self.default = default or httpx.Response(200, json={"ok": True})
        self.requests: list[httpx.Request] = []
        self.arrived = asyncio.Event()

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.arrived.set()
        reply = self.script.pop(0) if self.script else self.default
        if isinstance(reply, Exception):
            raise reply
        if isinstance(reply, httpx.Response):
            return reply
        return await reply(request)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self), base_url="https://api.example")


class DropsMidBody(httpx.AsyncByteStream):
    """A body whose connection is lost after its first bytes."""

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b'{"messages": ['
        raise httpx.ReadError("connection lost mid-body")


def _upstream(**settings: Any) -> Upstream:
    """A fresh upstream (its own name, so its metrics start at zero) with the httpx classifier."""
    return Upstream(f"test-{uuid.uuid4().hex[:10]}", UpstreamSettings(**settings), classify_http)


def _send(client: httpx.AsyncClient, method: str = "POST", **kw: Any) -> Callable[[], Awaitable[Any]]:
    """The call a client of an HTTP API makes: the request, an error status raised, the JSON answer."""

    async def send() -> Any:
        response = await client.request(method, "/v1/messages", **kw)
        return response.raise_for_status().json()

    return send


async def _read_into(chunks: list[bytes], stream: Held[bytes]) -> None:
    """Read ``stream`` to its end (or its failure), keeping its chunks."""
    async for chunk in stream:
        chunks.append(chunk)


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _calls(upstream: Upstream, outcome: str) -> float:
    return _sample("bastion_upstream_calls_total", upstream=upstream.name, outcome=outcome)


async def test_a_503_is_retried_and_the_retry_answers():
    """A 503 then an answer: the caller gets the answer, after two requests."""
    api = FakeApi(httpx.Response(503))
    async with api.client() as client:
        answer = await _upstream().call(_send(client))
    assert answer == {"ok": True}
    assert len(api.requests) == 2


async def test_a_429_with_a_short_retry_after_is_retried():
    """A 429 asking for a wait within max_retry_wait_seconds is retried."""
    api = FakeApi(httpx.Response(429, headers={"Retry-After": "1"}))
    async with api.client() as client:
        answer = await _upstream(max_retry_wait_seconds=2.0).call(_send(client))
    assert answer == {"ok": True}
    assert len(api.requests) == 2


async def test_a_429_with_a_long_retry_after_is_not_retried():
    """A 429 asking for a longer wait than max_retry_wait_seconds fails at once (a fallback is faster)."""
    api = FakeApi(default=httpx.Response(429, headers={"Retry-After": "7"}))
    async with api.client() as client:
        with pytest.raises(httpx.HTTPStatusError) as caught:
            await _upstream(max_retry_wait_seconds=2.0).call(_send(client))
    assert caught.value.response.status_code == 429
    assert len(api.requests) == 1


async def test_a_400_is_the_requests_fault():
    """A 400 is neither retried, nor counted against the circuit, nor a reason to fall back."""
    upstream = _upstream(breaker_failures=1)
    api = FakeApi(default=httpx.Response(400, json={"error": "bad parameter"}))
    async with api.client() as client:
        with pytest.raises(httpx.HTTPStatusError) as caught:
            await upstream.call(_send(client))
    assert len(api.requests) == 1
    assert upstream.breaker.state is State.CLOSED and upstream.breaker.failures == 0
    assert upstream.classify(caught.value).fall_back is False
    assert _calls(upstream, "rejected") == 1


async def test_the_breaker_opens_after_its_failures_and_shows_in_the_metrics():
    """breaker_failures failed calls open the circuit: the next call is refused unsent, the gauge shows 2."""
    upstream = _upstream(breaker_failures=2, retries=0)
    api = FakeApi(default=httpx.Response(500))
    async with api.client() as client:
        for _ in range(2):
            with pytest.raises(httpx.HTTPStatusError):
                await upstream.call(_send(client))
        with pytest.raises(CircuitOpen):
            await upstream.call(_send(client))
    assert len(api.requests) == 2
    assert _sample("bastion_circuit_breaker_state", breaker=upstream.name) == 2
    assert _calls(upstream, "failure") == 2 and _calls(upstream, "circuit_open") == 1


def test_an_open_circuit_is_our_refusal_and_may_fall_back():
    """CircuitOpen is judged by the upstream itself: not a failure, not retried, another upstream may serve."""
    verdict = _upstream().classify(CircuitOpen("paused"))
    assert verdict == Verdict(failure=False, retry=False, fall_back=True)


async def test_a_full_bulkhead_refuses_at_once():
    """With every slot taken and no waiting room, the next call raises BulkheadFull without a request."""
    release = asyncio.Event()

    async def slow(request: httpx.Request) -> httpx.Response:
        await release.wait()
        return httpx.Response(200, json={"ok": True})

    upstream = _upstream(max_concurrent=1, max_waiting=0)
    api = FakeApi(default=slow)
    async with api.client() as client:
        first = asyncio.create_task(upstream.call(_send(client)))
        await api.arrived.wait()
        assert _sample("bastion_bulkhead_in_use", bulkhead=upstream.name) == 1
        with pytest.raises(BulkheadFull):
            await upstream.call(_send(client))
        release.set()
        assert await first == {"ok": True}
    assert len(api.requests) == 1
    assert _calls(upstream, "bulkhead_full") == 1
    assert _sample("bastion_bulkhead_in_use", bulkhead=upstream.name) == 0


async def test_a_timeout_is_a_failure_and_not_retried():
    """An upstream silent past timeout_seconds raises TimeoutError, counted as a failure, sent once."""
    never = asyncio.Event()

    async def silent(request: httpx.Request) -> httpx.Response:
        await never.wait()
        raise AssertionError("the upstream never answers")

    upstream = _upstream(timeout_seconds=0.05)
    api = FakeApi(default=silent)
    async with api.client() as client:
        with pytest.raises(TimeoutError) as caught:
            await upstream.call(_send(client))
    assert upstream.classify(caught.value) == Verdict(failure=True, retry=False, fall_back=True)
    assert len(api.requests) == 1
    assert upstream.breaker.failures == 1


async def test_a_drop_mid_body_of_a_post_is_not_retried():
    """A POST whose answer breaks off after its first bytes is not sent again: it may have been acted on."""
    api = FakeApi(default=httpx.Response(200, stream=DropsMidBody()))
    async with api.client() as client:
        with pytest.raises(httpx.ReadError):
            await _upstream().call(_send(client))
    assert len(api.requests) == 1


async def test_a_stream_that_drops_after_its_first_byte_is_not_retried():
    """Only opening a stream is retried: a drop while it is read reaches the caller, and the breaker."""
    upstream = _upstream(breaker_failures=1)
    api = FakeApi(default=httpx.Response(200, stream=DropsMidBody()))
    async with api.client() as client:
        stream = await upstream.open_stream(lambda: ResponseStream.open(client, client.build_request("GET", "/feed")))
        chunks: list[bytes] = []
        try:
            with pytest.raises(httpx.ReadError) as caught:
                await _read_into(chunks, stream)
            upstream.stream_failed(caught.value)
        finally:
            await stream.aclose()
    assert chunks == [b'{"messages": [']
    assert len(api.requests) == 1
    assert upstream.breaker.state is State.OPEN
    assert _calls(upstream, "broken") == 1


async def test_an_open_stream_holds_its_bulkhead_slot_until_closed():
    """A stream keeps its slot after it opened, and gives it back when closed."""
    upstream = _upstream(max_concurrent=1)
    api = FakeApi(default=httpx.Response(200, content=b"data: hello\n\n"))
    async with api.client() as client:
        stream = await upstream.open_stream(lambda: ResponseStream.open(client, client.build_request("GET", "/feed")))
        assert upstream.bulkhead.active == 1
        with pytest.raises(BulkheadFull):
            await upstream.call(_send(client))
        await stream.aclose()
    assert upstream.bulkhead.active == 0


async def test_opening_a_stream_is_retried_on_a_503():
    """A stream whose opening met a 503 is opened again, and the second answer is the stream."""
    api = FakeApi(httpx.Response(503), default=httpx.Response(200, content=b"data: hello\n\n"))
    async with api.client() as client:
        stream = await _upstream().open_stream(lambda: ResponseStream.open(client, client.build_request("GET", "/")))
        try:
            body = b"".join([chunk async for chunk in stream])
        finally:
            await stream.aclose()
    assert body == b"data: hello\n\n"
    assert len(api.requests) == 2


async def test_a_read_timeout_is_retried_for_a_get_only():
    """A read timeout repeats a GET (idempotent), never a POST (the upstream may be acting on it)."""

    async def raise_timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("no answer in time", request=request)

    get_api, post_api = FakeApi(raise_timeout), FakeApi(raise_timeout)
    async with get_api.client() as client:
        assert await _upstream().call(_send(client, "GET")) == {"ok": True}
    async with post_api.client() as client:
        with pytest.raises(httpx.ReadTimeout):
            await _upstream().call(_send(client, "POST"))
    assert len(get_api.requests) == 2 and len(post_api.requests) == 1


async def test_a_500_repeats_a_post_only_with_an_idempotency_key():
    """A 500 after a POST is retried when the request carries an Idempotency-Key, and not otherwise."""
    keyed, plain = FakeApi(httpx.Response(500)), FakeApi(httpx.Response(500))
    async with keyed.client() as client:
        await _upstream().call(_send(client, headers={"Idempotency-Key": "order-42"}))
    async with plain.client() as client:
        with pytest.raises(httpx.HTTPStatusError):
            await _upstream().call(_send(client))
    assert len(keyed.requests) == 2 and len(plain.requests) == 1


async def test_a_connection_refused_is_retried_whatever_the_method():
    """A connect error means nothing was sent: even a POST is tried again."""

    async def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    api = FakeApi(refused)
    async with api.client() as client:
        assert await _upstream().call(_send(client)) == {"ok": True}
    assert len(api.requests) == 2


async def test_no_retries_for_a_call_that_asks_for_none():
    """``retries=0`` makes one attempt, whatever the classifier would allow (a single-use code)."""
    api = FakeApi(default=httpx.Response(503))
    async with api.client() as client:
        with pytest.raises(httpx.HTTPStatusError):
            await _upstream(retries=2).call(_send(client), retries=0)
    assert len(api.requests) == 1


async def test_calls_count_their_outcome_duration_and_retries_per_upstream():
    """A call retried once and then answered counts one ok call, one retry and one duration sample."""
    upstream, other = _upstream(), _upstream()
    api = FakeApi(httpx.Response(503))
    async with api.client() as client:
        await upstream.call(_send(client))
    labels = {"upstream": upstream.name}
    assert _calls(upstream, "ok") == 1 and _calls(upstream, "failure") == 0
    assert _sample("bastion_upstream_retries_total", **labels) == 1
    assert _sample("bastion_upstream_call_duration_seconds_count", **labels) == 1
    assert _calls(other, "ok") == 0


async def test_a_cancelled_call_counts_as_cancelled_and_frees_its_slot():
    """A caller cancelled mid-call leaves no slot taken and no failure counted."""
    never = asyncio.Event()

    async def slow(request: httpx.Request) -> httpx.Response:
        await never.wait()
        raise AssertionError("cancelled before an answer")

    upstream = _upstream()
    api = FakeApi(default=slow)
    async with api.client() as client:
        task = asyncio.create_task(upstream.call(_send(client)))
        await api.arrived.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert upstream.bulkhead.active == 0 and upstream.breaker.failures == 0
    assert _calls(upstream, "cancelled") == 1


async def test_httpx2_errors_are_judged_like_httpx_errors():
    """The httpx2 fork (authlib's client) raises the same tree, and gets the same verdicts."""
    import httpx2

    request = httpx2.Request("POST", "https://api.example/v1")
    limited = httpx2.HTTPStatusError(
        "429", request=request, response=httpx2.Response(429, headers={"Retry-After": "3"}, request=request)
    )
    assert classify_http(limited) == Verdict(failure=True, retry=True, fall_back=True, retry_after=3.0)
    assert classify_http(httpx2.ConnectError("refused", request=request)).retry is True
    assert classify_http(httpx2.ReadTimeout("slow", request=request)).retry is False


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (400, Verdict(failure=False, retry=False, fall_back=False)),
        (401, Verdict(failure=False, retry=False, fall_back=False)),
        (404, Verdict(failure=False, retry=False, fall_back=False)),
        (429, Verdict(failure=True, retry=True, fall_back=True)),
        (500, Verdict(failure=True, retry=False, fall_back=True)),
        (502, Verdict(failure=True, retry=False, fall_back=True)),
        (503, Verdict(failure=True, retry=True, fall_back=True)),
    ],
)
def test_statuses_of_a_post_get_their_verdicts(status: int, verdict: Verdict):
    """The verdict on each error status of a POST (no Idempotency-Key), as the table in core/http.py says."""
    request = httpx.Request("POST", "https://api.example/v1")
    error = httpx.HTTPStatusError(str(status), request=request, response=httpx.Response(status, request=request))
    assert classify_http(error) == verdict


def test_an_answer_that_does_not_parse_is_a_failure():
    """A 2xx whose body is not the JSON promised counts against the upstream, and is not repeated."""
    with pytest.raises(json.JSONDecodeError) as caught:
        json.loads(b"<html>oops</html>")
    assert classify_http(caught.value) == Verdict(failure=True, retry=False, fall_back=True)


def test_an_error_that_is_not_the_upstreams_is_neither_failure_nor_fallback():
    """An exception no HTTP exchange raises (a bug of ours) says nothing about the upstream."""
    assert classify_http(KeyError("missing")) == Verdict(failure=False, retry=False, fall_back=False)


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after-ms": "250", "retry-after": "7"}, 0.25),
        ({"retry-after": "-3"}, 0.0),
        ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),
        ({"retry-after": "soon"}, None),
        ({"retry-after": "inf"}, None),
        ({}, None),
    ],
)
def test_retry_after_reads_seconds_milliseconds_and_dates(headers: dict[str, str], seconds: float | None):
    """Retry-After as seconds or an HTTP date (a past one is 0), retry-after-ms first; nonsense is None."""
    assert retry_after(httpx.Headers(headers)) == seconds


def test_retry_after_counts_down_to_a_future_date():
    """A Retry-After date in the future is the seconds left until it."""
    import email.utils
    import time

    soon = email.utils.formatdate(time.time() + 60, usegmt=True)
    assert retry_after(httpx.Headers({"Retry-After": soon})) == pytest.approx(60, abs=2)


async def test_one_client_name_cannot_point_at_two_hosts():
    """A second module asking for a taken client name with another base URL gets an error, not the first
    module's client (which would send its calls to the other host)."""
    clients = HttpClients()
    first = clients.client("whatsapp", base_url="https://graph.facebook.com")
    try:
        assert clients.client("whatsapp", base_url="https://graph.facebook.com/") is first
        assert clients.client("whatsapp") is first
        with pytest.raises(ValueError, match="already exists"):
            clients.client("whatsapp", base_url="http://127.0.0.1:9")
    finally:
        await first.aclose()
