"""Token budgets per API key or user, counted from upstream usage and shared across instances over Redis."""

from __future__ import annotations

import pytest

from tests.ai.conftest import AUTH, CHAT
from tests.conftest import serve

# Each fake answer uses 19 tokens (10 in, 9 out): a 50-token budget allows three calls.
BUDGET = {"tokens_per_minute": 50}


@pytest.mark.redis
async def test_token_budget_is_shared_by_two_instances_over_redis(ai_app, make_settings, redis_url, upstream):
    """Two app instances on one Redis count one budget: the fourth call, on either, is refused."""
    one, two = ai_app(redis_url=redis_url, ai=BUDGET), ai_app(redis_url=redis_url, ai=BUDGET)
    async with serve(one) as a, serve(two) as b:
        statuses = [
            (await (a if i % 2 else b).post("/v1/chat/completions", json=CHAT, headers=AUTH)).status_code
            for i in range(3)
        ]
        refused_a = await a.post("/v1/chat/completions", json=CHAT, headers=AUTH)
        refused_b = await b.post("/v1/chat/completions", json=CHAT, headers=AUTH)
    assert statuses == [200, 200, 200]
    assert refused_a.status_code == 429 and refused_b.status_code == 429
    assert refused_a.json()["code"] == "TOKEN_BUDGET_EXCEEDED"
    assert 1 <= int(refused_a.headers["retry-after"]) <= 60
    assert len(upstream.requests) == 3


async def test_budgets_are_per_caller(ai_app, upstream):
    """One user's spent budget leaves another's untouched."""
    async with serve(ai_app(ai=BUDGET)) as http:
        for _ in range(3):
            await http.post("/v1/chat/completions", json=CHAT, headers=AUTH)
        alice = await http.post("/v1/chat/completions", json=CHAT, headers=AUTH)
        bob = await http.post("/v1/chat/completions", json=CHAT, headers={"Authorization": "Bearer user-bob"})
    assert alice.status_code == 429 and bob.status_code == 200


async def test_streams_are_charged_with_their_usage(ai_app, upstream):
    """A stream's usage (from the upstream's usage chunk) counts against the budget like a whole answer."""
    async with serve(ai_app(ai=BUDGET)) as http:
        for _ in range(3):
            streamed = await http.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=AUTH)
            assert streamed.status_code == 200
        refused = await http.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=AUTH)
    assert refused.status_code == 429
    assert refused.json()["code"] == "TOKEN_BUDGET_EXCEEDED"


async def test_daily_budget_applies_too(ai_app, upstream):
    """The per-day budget refuses on its own when the per-minute one is not set."""
    async with serve(ai_app(ai={"tokens_per_day": 20})) as http:
        first = await http.post("/v1/chat/completions", json=CHAT, headers=AUTH)
        second = await http.post("/v1/chat/completions", json=CHAT, headers=AUTH)
        third = await http.post("/v1/chat/completions", json=CHAT, headers=AUTH)
    assert (first.status_code, second.status_code, third.status_code) == (200, 200, 429)
    assert "per day" in third.json()["detail"]
