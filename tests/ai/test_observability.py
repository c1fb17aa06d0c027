"""Metrics per provider and model, and log lines that carry numbers but never prompts or answers."""

from __future__ import annotations

from prometheus_client import REGISTRY

from tests.ai.conftest import AUTH, CHAT
from tests.ai.fakes import Behaviour
from tests.conftest import serve

SECRET_PROMPT = "my diary entry: the vault code is 4711"


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_calls_are_counted_by_provider_model_and_outcome(ai_app, upstream):
    """ai_requests_total counts each call under its provider, upstream model and outcome."""
    upstream.script(Behaviour(status=401))
    ok = dict(provider="fake", model="fake-model", outcome="ok")
    failed = dict(provider="fake", model="fake-model", outcome="provider_error")
    before_ok, before_failed = _value("bastion_ai_requests_total", **ok), _value("bastion_ai_requests_total", **failed)
    async with serve(ai_app()) as http:
        await http.post("/v1/chat/completions", json=CHAT, headers=AUTH)
        await http.post("/v1/chat/completions", json=CHAT, headers=AUTH)
    assert _value("bastion_ai_requests_total", **failed) == before_failed + 1
    assert _value("bastion_ai_requests_total", **ok) == before_ok + 1


async def test_tokens_latency_and_time_to_first_token_are_recorded(ai_app, upstream):
    """Tokens in and out are counted; latency is observed per call and time to first token per stream."""
    labels = dict(provider="claude", model="claude-test")
    tokens_in = _value("bastion_ai_tokens_total", **labels, direction="in")
    tokens_out = _value("bastion_ai_tokens_total", **labels, direction="out")
    latency = _value("bastion_ai_request_duration_seconds_count", **labels)
    ttft = _value("bastion_ai_time_to_first_token_seconds_count", **labels)
    async with serve(ai_app()) as http:
        await http.post("/v1/chat/completions", json={**CHAT, "model": "claude"}, headers=AUTH)
        await http.post("/v1/chat/completions", json={**CHAT, "model": "claude", "stream": True}, headers=AUTH)
    assert _value("bastion_ai_tokens_total", **labels, direction="in") == tokens_in + 20
    assert _value("bastion_ai_tokens_total", **labels, direction="out") == tokens_out + 18
    assert _value("bastion_ai_request_duration_seconds_count", **labels) == latency + 2
    assert _value("bastion_ai_time_to_first_token_seconds_count", **labels) == ttft + 1


async def test_metrics_endpoint_exposes_the_ai_series(ai_app, upstream):
    """/metrics shows the AI series and each provider's circuit state."""
    async with serve(ai_app()) as http:
        await http.post("/v1/chat/completions", json=CHAT, headers=AUTH)
        text = (await http.get("/metrics")).text
    assert 'bastion_ai_requests_total{model="fake-model",outcome="ok",provider="fake"}' in text
    assert 'bastion_circuit_breaker_state{breaker="ai:fake"}' in text


async def test_logs_carry_numbers_never_prompts_or_answers(ai_app, upstream, logs):
    """The call's log line has provider, model, latency and tokens; no prompt or answer text is logged."""
    body = {**CHAT, "messages": [{"role": "user", "content": SECRET_PROMPT}]}
    async with serve(ai_app()) as http:
        await http.post("/v1/chat/completions", json=body, headers=AUTH)
        await http.post("/v1/chat/completions", json={**body, "stream": True}, headers=AUTH)
        upstream.script(Behaviour(status=500), Behaviour(status=500), Behaviour(status=500))
        await http.post("/api/chat", json={"prompt": SECRET_PROMPT}, headers=AUTH)
    lines = logs()
    calls = [line for line in lines if line.get("event") == "ai call"]
    assert len(calls) == 3
    assert {"provider", "model", "latency_ms", "tokens_in", "tokens_out", "outcome"} <= calls[0].keys()
    assert calls[0]["tokens_in"] == 10 and calls[0]["tokens_out"] == 9
    assert "ttft_ms" in calls[1]
    everything = repr(lines)
    assert "4711" not in everything and "diary" not in everything
    assert "How can I help" not in everything


async def test_with_tracing_on_the_provider_call_is_a_span_and_gets_the_traceparent(ai_app, upstream, logs):
    """The gateway's call to a provider is an upstream span with the model, and the provider receives the
    request's trace in ``traceparent`` (over the gateway's aiohttp sessions)."""
    from tests.conftest import eventually
    from tests.observability.otlp import OtlpReceiver

    async with OtlpReceiver() as receiver:
        otel = {"endpoint": receiver.endpoint, "sample_ratio": 1.0, "schedule_delay_ms": 50}
        async with serve(ai_app(otel=otel)) as http:
            response = await http.post("/v1/chat/completions", json=CHAT, headers=AUTH)
            assert response.status_code == 200
            await eventually(lambda: receiver.named("upstream ai:fake"), timeout=10)
    (call,) = receiver.named("upstream ai:fake")
    assert call.attributes["gen_ai.request.model"] == "fake-model"
    trace_id = next(line["trace_id"] for line in logs() if line.get("route") == "/v1/chat/completions")
    assert call.trace_id == trace_id
    assert upstream.requests[-1].headers["traceparent"].split("-")[1] == trace_id
