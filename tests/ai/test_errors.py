"""Upstream failures map to stable problem codes, are retried only where safe, and never leak upstream text."""

from __future__ import annotations

import json

import pytest

from tests.ai.conftest import AUTH, CHAT, providers_for, sse_events
from tests.ai.fakes import Behaviour, DropServer
from tests.conftest import free_port, serve


async def test_upstream_auth_failure_is_502_without_its_words(ai_app, upstream):
    """An upstream 401 is 502 PROVIDER_ERROR; its message (which quotes a key) never reaches the client."""
    upstream.default = Behaviour(status=401)
    async with serve(ai_app()) as http:
        response = await http.post("/v1/chat/completions", json=CHAT, headers=AUTH)
    assert response.status_code == 502
    assert response.json()["code"] == "PROVIDER_ERROR"
    assert "LEAKED" not in response.text and "sk-" not in response.text
    assert len(upstream.requests) == 1  # an auth failure is not retried


async def test_upstream_429_is_503_with_its_retry_after(ai_app, upstream):
    """An upstream 429 asking for a long wait is 503 PROVIDER_RATE_LIMIT with that Retry-After, not retried."""
    upstream.default = Behaviour(status=429, retry_after="7")
    async with serve(ai_app()) as http:
        response = await http.post("/v1/chat/completions", json=CHAT, headers=AUTH)
    assert response.status_code == 503
    assert response.json()["code"] == "PROVIDER_RATE_LIMIT"
    assert response.headers["retry-after"] == "7"
    assert len(upstream.requests) == 1


async def test_upstream_429_with_a_short_wait_is_retried(ai_app, upstream):
    """A 429 whose Retry-After is within the retry budget is retried, and the retry's answer is served."""
    upstream.script(Behaviour(status=429, retry_after="1"))
    async with serve(ai_app()) as http:
        response = await http.post("/v1/chat/completions", json=CHAT, headers=AUTH)
    assert response.status_code == 200
    assert len(upstream.requests) == 2


async def test_upstream_5xx_is_retried_then_502(ai_app, upstream):
    """A 500 is retried (3 attempts in all) and then answered 502 PROVIDER_ERROR."""
    upstream.default = Behaviour(status=500)
    async with serve(ai_app()) as http:
        response = await http.post("/v1/chat/completions", json=CHAT, headers=AUTH)
    assert response.status_code == 502
    body = response.json()
    assert body["code"] == "PROVIDER_ERROR" and body["upstream_status"] == 500
    assert len(upstream.requests) == 3


async def test_a_transient_5xx_is_hidden_by_the_retry(ai_app, upstream):
    """One 503 and then an answer: the client sees only the answer."""
    upstream.script(Behaviour(status=503))
    async with serve(ai_app()) as http:
        response = await http.post("/v1/chat/completions", json=CHAT, headers=AUTH)
    assert response.status_code == 200
    assert len(upstream.requests) == 2


async def test_upstream_400_is_the_requests_fault(ai_app, upstream):
    """An upstream 400 is 400 PROVIDER_REJECTED, neither retried nor sent to a fallback."""
    upstream.default = Behaviour(status=400)
    app = ai_app(models={"gpt": ["fake:fake-model", "claude:claude-test"]})
    async with serve(app) as http:
        response = await http.post("/v1/chat/completions", json=CHAT, headers=AUTH)
    assert response.status_code == 400
    assert response.json()["code"] == "PROVIDER_REJECTED"
    assert "LEAKED" not in response.text
    assert len(upstream.requests) == 1


async def test_slow_first_byte_is_504(ai_app, upstream):
    """An upstream slower than the provider's timeout is 504 PROVIDER_TIMEOUT (a timeout is not retried)."""
    upstream.default = Behaviour(first_byte_delay=5)
    app = ai_app(providers=providers_for(upstream, timeout_seconds=0.3))
    async with serve(app) as http:
        response = await http.post("/v1/chat/completions", json=CHAT, headers=AUTH)
    assert response.status_code == 504
    assert response.json()["code"] == "PROVIDER_TIMEOUT"
    assert len(upstream.requests) == 1
    await upstream.wait_cancelled()  # the timed-out call was abandoned, not left running


async def test_stream_with_slow_first_byte_is_504_before_it_starts(ai_app, upstream):
    """A stream whose upstream does not answer in time is a plain 504 problem, not a broken stream."""
    upstream.default = Behaviour(first_byte_delay=5)
    app = ai_app(providers=providers_for(upstream, timeout_seconds=0.3))
    async with serve(app) as http:
        response = await http.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=AUTH)
    assert response.status_code == 504
    assert response.headers["content-type"] == "application/problem+json"


async def test_unreachable_upstream_is_502_after_retries(ai_app, upstream):
    """Connection refused is retried, then 502 PROVIDER_ERROR."""
    dead = f"http://127.0.0.1:{free_port()}/v1"
    app = ai_app(providers=providers_for(upstream, base_url=dead))
    async with serve(app) as http:
        response = await http.post("/v1/chat/completions", json=CHAT, headers=AUTH)
    assert response.status_code == 502
    assert response.json()["code"] == "PROVIDER_ERROR"


async def test_connection_dropped_before_the_answer_is_retried(ai_app, upstream):
    """A connection the upstream drops before answering is retried (3 attempts), then 502."""
    async with DropServer() as dropper:
        app = ai_app(providers=providers_for(upstream, base_url=dropper.url + "/v1"))
        async with serve(app) as http:
            response = await http.post("/v1/chat/completions", json=CHAT, headers=AUTH)
    assert response.status_code == 502
    assert response.json()["code"] == "PROVIDER_ERROR"
    assert dropper.connections == 3


async def test_stall_mid_stream_ends_with_an_error_event(ai_app, upstream):
    """An upstream that goes silent mid-stream: the stream ends with a PROVIDER_TIMEOUT error event and [DONE]."""
    upstream.default = Behaviour(stall_after=2)
    async with serve(ai_app()) as http:
        response = await http.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=AUTH)
    events = sse_events(response.text)
    assert events[-1] == (None, "[DONE]")
    kind, data = events[-2]
    assert kind == "error"
    assert json.loads(data)["error"]["code"] == "PROVIDER_TIMEOUT"
    texts = [json.loads(d)["choices"][0]["delta"].get("content", "") for _, d in events[:-2]]
    assert "".join(texts) == "Hello!"


async def test_no_retry_after_the_first_byte(ai_app, upstream):
    """A stream the upstream drops midway ends with an error event; it is never retried or re-sent."""
    upstream.default = Behaviour(drop_after=3)
    async with serve(ai_app(models={"gpt": ["fake:fake-model", "claude:claude-test"]})) as http:
        response = await http.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=AUTH)
    events = sse_events(response.text)
    assert events[-2][0] == "error"
    assert json.loads(events[-2][1])["error"]["code"] == "PROVIDER_ERROR"
    assert events[-1] == (None, "[DONE]")
    assert len(upstream.requests) == 1  # no retry and no fallback once the answer had started


async def test_upstream_error_event_mid_stream_is_passed_on_safely(ai_app, upstream):
    """An error chunk from the upstream becomes our error event, without the upstream's message."""
    upstream.default = Behaviour(error_event_after=2)
    async with serve(ai_app()) as http:
        response = await http.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=AUTH)
    events = sse_events(response.text)
    assert events[-2][0] == "error"
    assert json.loads(events[-2][1])["error"]["code"] == "PROVIDER_ERROR"
    assert "upstream broke" not in response.text


@pytest.mark.parametrize(
    ("status", "code", "http_status"),
    [
        (401, "PROVIDER_ERROR", 502),
        (429, "PROVIDER_RATE_LIMIT", 503),
        (529, "PROVIDER_ERROR", 502),
    ],
)
async def test_anthropic_errors_map_like_openai_ones(ai_app, upstream, status, code, http_status):
    """Anthropic's 401, 429 and 529 (overloaded) map to the same codes; its message never leaks."""
    upstream.default = Behaviour(status=status, retry_after="30" if status == 429 else None)
    async with serve(ai_app()) as http:
        response = await http.post("/v1/chat/completions", json={**CHAT, "model": "claude"}, headers=AUTH)
    assert response.status_code == http_status
    assert response.json()["code"] == code
    assert "LEAKED" not in response.text


async def test_production_problem_keeps_the_code_and_a_safe_detail(ai_app, upstream, make_settings):
    """In production a provider failure still says PROVIDER_ERROR, with the gateway's own words only."""
    upstream.default = Behaviour(status=500)
    import base64
    import os

    key = base64.b64encode(os.urandom(32)).decode()
    app = ai_app(
        env="production",
        crypto={"keys": {"k": key}, "active_key_id": "k"},
        cron_secret="kY3v9QmTz2LwX8pR4nB7cD1fH6jG5sAe",
        allowed_hosts=["localhost", "api.example.com"],
    )
    async with serve(app) as http:
        response = await http.post("/v1/chat/completions", json=CHAT, headers=AUTH)
    assert response.status_code == 502
    assert response.json()["detail"] == "The AI provider failed (HTTP 500)."
