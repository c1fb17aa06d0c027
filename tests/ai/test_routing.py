"""Routing: fallback along a model's targets, the circuit breaker per provider, and the bulkhead."""

from __future__ import annotations

import asyncio

from prometheus_client import REGISTRY

from bastion.core.resilience import State
from tests.ai.conftest import AUTH, CHAT, providers_for, service_of
from tests.ai.fakes import Behaviour
from tests.conftest import free_port, serve

FALLBACK = {"gpt": ["fake:fake-model", "claude:claude-test"]}


def _fallbacks(model: str, source: str, target: str) -> float:
    return (
        REGISTRY.get_sample_value(
            "bastion_ai_fallbacks_total", {"model": model, "from_provider": source, "to_provider": target}
        )
        or 0.0
    )


async def test_fallback_serves_when_the_primary_fails(ai_app, upstream):
    """When the first target fails (after its retries), the next one answers, and the fallback is counted."""
    upstream.script(*[Behaviour(status=500)] * 3)
    before = _fallbacks("gpt", "fake", "claude")
    async with serve(ai_app(models=FALLBACK)) as http:
        response = await http.post("/v1/chat/completions", json=CHAT, headers=AUTH)
    assert response.status_code == 200
    assert response.json()["model"] == "claude-test"
    assert [r.path for r in upstream.requests] == ["/v1/chat/completions"] * 3 + ["/v1/messages"]
    assert _fallbacks("gpt", "fake", "claude") == before + 1


async def test_fallback_also_opens_streams(ai_app, upstream):
    """A stream whose first target cannot be reached is opened on the next target."""
    dead = f"http://127.0.0.1:{free_port()}/v1"
    app = ai_app(models=FALLBACK, providers=providers_for(upstream, base_url=dead, retries=0))
    async with serve(app) as http:
        response = await http.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=AUTH)
    assert response.status_code == 200
    assert '"model":"claude-test"' in response.text
    assert response.text.endswith("data: [DONE]\n\n")


async def test_all_targets_failing_gives_the_last_error(ai_app, upstream):
    """When every target fails, the client gets the last target's error."""
    upstream.default = Behaviour(status=429, retry_after="60")
    async with serve(ai_app(models=FALLBACK)) as http:
        response = await http.post("/v1/chat/completions", json=CHAT, headers=AUTH)
    assert response.status_code == 503
    assert response.json()["code"] == "PROVIDER_RATE_LIMIT"
    assert len(upstream.requests) == 2


async def test_breaker_opens_after_repeated_failures(ai_app, upstream):
    """After breaker_failures failures the provider is not called: 503 PROVIDER_UNAVAILABLE at once."""
    upstream.default = Behaviour(status=500)
    app = ai_app(providers=providers_for(upstream, retries=0, breaker_failures=3))
    async with serve(app) as http:
        statuses = [(await http.post("/v1/chat/completions", json=CHAT, headers=AUTH)).status_code for _ in range(3)]
        refused = await http.post("/v1/chat/completions", json=CHAT, headers=AUTH)
    assert statuses == [502, 502, 502]
    assert refused.status_code == 503
    assert refused.json()["code"] == "PROVIDER_UNAVAILABLE"
    assert 1 <= int(refused.headers["retry-after"]) <= 10
    assert len(upstream.requests) == 3
    assert service_of(app).upstreams["fake"].breaker.state is State.OPEN


async def test_open_breaker_sends_calls_to_the_fallback(ai_app, upstream):
    """While the primary's circuit is open, its calls go straight to the next target."""
    upstream.default_for["/v1/chat/completions"] = Behaviour(status=500)
    app = ai_app(models=FALLBACK, providers=providers_for(upstream, retries=0, breaker_failures=2))
    async with serve(app) as http:
        for _ in range(2):
            await http.post("/v1/chat/completions", json=CHAT, headers=AUTH)
        upstream.requests.clear()
        response = await http.post("/v1/chat/completions", json=CHAT, headers=AUTH)
    assert response.status_code == 200
    assert [r.path for r in upstream.requests] == ["/v1/messages"]


async def test_breaker_half_opens_and_recovers(ai_app, upstream):
    """After the reset timeout one trial call goes through; its success closes the circuit again."""
    upstream.script(*[Behaviour(status=500)] * 2)
    app = ai_app(providers=providers_for(upstream, retries=0, breaker_failures=2, breaker_reset_seconds=30))
    breaker = service_of(app).upstreams["fake"].breaker
    async with serve(app) as http:
        for _ in range(2):
            await http.post("/v1/chat/completions", json=CHAT, headers=AUTH)
        assert breaker.state is State.OPEN
        breaker.opened_at -= 30  # the reset timeout has passed
        trial = await http.post("/v1/chat/completions", json=CHAT, headers=AUTH)
        after = await http.post("/v1/chat/completions", json=CHAT, headers=AUTH)
    assert trial.status_code == 200 and after.status_code == 200
    assert breaker.state is State.CLOSED
    assert len(upstream.requests) == 4


async def test_failed_trial_opens_the_breaker_again(ai_app, upstream):
    """A failing half-open trial re-opens the circuit at once."""
    upstream.default = Behaviour(status=500)
    app = ai_app(providers=providers_for(upstream, retries=0, breaker_failures=2, breaker_reset_seconds=30))
    breaker = service_of(app).upstreams["fake"].breaker
    async with serve(app) as http:
        for _ in range(2):
            await http.post("/v1/chat/completions", json=CHAT, headers=AUTH)
        breaker.opened_at -= 30
        trial = await http.post("/v1/chat/completions", json=CHAT, headers=AUTH)
        refused = await http.post("/v1/chat/completions", json=CHAT, headers=AUTH)
    assert trial.status_code == 502
    assert refused.json()["code"] == "PROVIDER_UNAVAILABLE"
    assert breaker.state is State.OPEN
    assert len(upstream.requests) == 3


async def test_client_errors_do_not_open_the_breaker(ai_app, upstream):
    """Upstream 400s are the request's fault: any number of them leave the circuit closed."""
    upstream.default = Behaviour(status=400)
    app = ai_app(providers=providers_for(upstream, breaker_failures=2))
    async with serve(app) as http:
        for _ in range(4):
            await http.post("/v1/chat/completions", json=CHAT, headers=AUTH)
    assert service_of(app).upstreams["fake"].breaker.state is State.CLOSED
    assert len(upstream.requests) == 4


async def test_full_bulkhead_refuses_with_503(ai_app, upstream):
    """With max_concurrent calls in flight and no waiting room, the next call is 503 PROVIDER_UNAVAILABLE."""
    upstream.script(Behaviour(first_byte_delay=0.5))
    app = ai_app(providers=providers_for(upstream, max_concurrent=1, max_waiting=0))
    async with serve(app) as http:
        slow = asyncio.ensure_future(http.post("/v1/chat/completions", json=CHAT, headers=AUTH))
        await upstream.wait_requests(1)
        refused = await http.post("/v1/chat/completions", json=CHAT, headers=AUTH)
        assert (await slow).status_code == 200
    assert refused.status_code == 503
    assert refused.json()["code"] == "PROVIDER_UNAVAILABLE"


async def test_open_stream_holds_its_bulkhead_slot_until_it_ends(ai_app, upstream):
    """A stream keeps its slot while open and gives it back when it ends."""
    app = ai_app(providers=providers_for(upstream, max_concurrent=1, max_waiting=0))
    bulkhead = service_of(app).upstreams["fake"].bulkhead
    async with serve(app) as http:
        response = await http.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=AUTH)
        assert response.status_code == 200
        assert bulkhead.active == 0
        again = await http.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=AUTH)
    assert again.status_code == 200
