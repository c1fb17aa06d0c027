"""Edge stage 5: rate limits, bans and the store-down policies, on memory and on real Redis."""

from __future__ import annotations

import asyncio
import math
import re
import time

import pytest

from tests.conftest import serve
from tests.support import principal_module, routes_module

RATE = re.compile(r'^"(?P<tier>[a-z_]+)";r=(?P<r>\d+);t=(?P<t>\d+)$')


async def test_every_limited_response_carries_the_rate_limit_headers(make_app):
    """RateLimit-Policy, RateLimit and X-RateLimit-* are on limited responses and count down."""
    async with serve(make_app(rate_limits={"general": "5/minute"})) as http:
        first = await http.get("/t/slow?seconds=0")
        second = await http.get("/t/slow?seconds=0")
    assert first.headers["ratelimit-policy"] == '"general";q=5;w=60'
    assert RATE.match(first.headers["ratelimit"])["r"] == "4"
    assert RATE.match(second.headers["ratelimit"])["r"] == "3"
    assert first.headers["x-ratelimit-limit"] == "5"
    assert first.headers["x-ratelimit-remaining"] == "4"
    assert second.headers["x-ratelimit-remaining"] == "3"
    reset = int(second.headers["x-ratelimit-reset"])
    assert time.time() < reset <= time.time() + 61


async def test_probes_are_not_rate_limited(make_app):
    """Health probes never count against a tier and carry no rate-limit headers."""
    async with serve(make_app(rate_limits={"general": "1/minute"})) as http:
        for _ in range(5):
            response = await http.get("/health/ready")
            assert response.status_code == 200
            assert "ratelimit" not in response.headers


async def test_over_the_limit_is_429_with_retry_after(make_app):
    """The request after the quota is a 429 problem with Retry-After and the limit headers."""
    async with serve(make_app(rate_limits={"general": "3/minute"})) as http:
        for _ in range(3):
            assert (await http.get("/t/slow?seconds=0")).status_code == 200
        refused = await http.get("/t/slow?seconds=0")
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    body = refused.json()
    assert body["code"] == "RATE_LIMITED" and body["tier"] == "general"
    assert 1 <= int(refused.headers["retry-after"]) <= 20  # one request is back every 20 s
    assert refused.headers["x-ratelimit-remaining"] == "0"
    assert RATE.match(refused.headers["ratelimit"])["r"] == "0"


async def test_unrouted_paths_are_limited_too(make_app):
    """A scanner probing unknown paths is limited like anyone else."""
    async with serve(make_app(rate_limits={"general": "2/minute"})) as http:
        statuses = [(await http.get(f"/wp-admin/{i}")).status_code for i in range(3)]
    assert statuses == [404, 404, 429]


async def test_tiers_are_separate(make_app):
    """Exhausting the auth tier leaves the general tier untouched."""
    async with serve(make_app(rate_limits={"auth": "1/minute", "general": "10/minute"})) as http:
        assert (await http.get("/t/auth")).status_code == 200
        assert (await http.get("/t/auth")).status_code == 429
        assert (await http.get("/t/slow?seconds=0")).status_code == 200


async def test_authenticated_principals_have_their_own_buckets(make_app):
    """The limit key is the principal when there is one, not the shared client address."""
    app = make_app(extra=(routes_module, principal_module), rate_limits={"general": "2/minute"})
    async with serve(app) as http:
        for _ in range(2):
            assert (await http.get("/t/principal", headers={"Authorization": "Bearer user-a"})).status_code == 200
        assert (await http.get("/t/principal", headers={"Authorization": "Bearer user-a"})).status_code == 429
        response = await http.get("/t/principal", headers={"Authorization": "Bearer user-b"})
        assert response.status_code == 200
        assert response.json()["principal"] == "user:b"
        assert (await http.get("/t/principal")).status_code == 200  # the address's own bucket


async def test_client_hitting_five_times_the_limit_is_banned(make_app):
    """Reaching 5x a tier's limit within its window bans the client from every tier."""
    app = make_app(rate_limits={"general": "2/minute", "auth": "100/minute"}, admission={"ban_seconds": 3600})
    async with serve(app) as http:
        statuses = [(await http.get("/t/slow?seconds=0")).status_code for _ in range(10)]
        banned = await http.get("/t/slow?seconds=0")
        other_tier = await http.get("/t/auth")
    assert statuses[:2] == [200, 200] and set(statuses[2:9]) == {429}
    assert banned.status_code == 429 and banned.json()["code"] == "CLIENT_BANNED"
    assert 3500 <= int(banned.headers["retry-after"]) <= 3600
    assert other_tier.json()["code"] == "CLIENT_BANNED"


async def test_ban_counts_in_metrics(make_app):
    """A ban increments bastion_ratelimit_bans_total for the tier."""
    from prometheus_client import REGISTRY

    before = REGISTRY.get_sample_value("bastion_ratelimit_bans_total", {"tier": "general"}) or 0.0
    async with serve(make_app(rate_limits={"general": "1/minute"})) as http:
        for _ in range(6):
            await http.get("/t/slow?seconds=0")
    after = REGISTRY.get_sample_value("bastion_ratelimit_bans_total", {"tier": "general"})
    assert after == before + 1


@pytest.mark.redis
async def test_limit_is_shared_by_two_instances_over_redis(make_app, make_settings, redis_url):
    """Two app instances sharing Redis allow the limit once in total, not once each."""
    settings = make_settings(redis_url=redis_url, rate_limits={"general": "10/minute"})
    one, two = make_app(settings), make_app(settings)
    async with serve(one) as a, serve(two) as b:
        responses = await asyncio.gather(*[(a if i % 2 else b).get("/t/slow?seconds=0") for i in range(30)])
    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == 10
    assert statuses.count(429) == 20
    refused = next(r for r in responses if r.status_code == 429)
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["ratelimit-policy"] == '"general";q=10;w=60'


@pytest.mark.redis
async def test_ban_is_shared_by_two_instances_over_redis(make_app, make_settings, redis_url):
    """A client banned through one instance is refused by the other."""
    settings = make_settings(redis_url=redis_url, rate_limits={"general": "2/minute"})
    one, two = make_app(settings), make_app(settings)
    async with serve(one) as a, serve(two) as b:
        for _ in range(10):
            await a.get("/t/slow?seconds=0")
        response = await b.get("/t/slow?seconds=0")
    assert response.json()["code"] == "CLIENT_BANNED"


@pytest.mark.redis
async def test_denials_are_answered_without_a_store_round_trip(make_app, make_settings, redis_url):
    """During a flood the in-process deny cache answers; the store sees few calls."""
    app = make_app(
        make_settings(redis_url=redis_url, rate_limits={"general": "2/minute"}, admission={"ban_multiplier": 1000})
    )
    calls = 0
    backend = app.platform.limiter.backend
    original = backend.hit

    async def counting(*args, **kwargs):
        nonlocal calls
        calls += 1
        return await original(*args, **kwargs)

    backend.hit = counting
    async with serve(app) as http:
        statuses = [(await http.get("/t/slow?seconds=0")).status_code for _ in range(40)]
    assert statuses.count(200) == 2 and statuses.count(429) == 38
    assert calls <= 3 + 38 // 2  # after the first denial, at most one store call per `limit` absorbed


@pytest.mark.redis
async def test_absorbed_attempts_still_lead_to_a_ban(make_app, make_settings, redis_url):
    """Attempts answered from the deny cache still count toward the abuse ban."""
    app = make_app(make_settings(redis_url=redis_url, rate_limits={"general": "2/minute"}))
    async with serve(app) as http:
        codes = [(await http.get("/t/slow?seconds=0")).json().get("code") for _ in range(30)]
    assert "CLIENT_BANNED" in codes


async def test_store_down_fail_open_tier_is_limited_in_process(make_app, make_settings, private_redis):
    """With Redis down a fail-open tier keeps answering, limited by the per-worker fallback, never 500."""
    app = make_app(make_settings(redis_url=private_redis.url, rate_limits={"general": "3/minute"}))
    async with serve(app) as http:
        assert (await http.get("/t/slow?seconds=0")).status_code == 200
        private_redis.stop()
        statuses = [(await http.get("/t/slow?seconds=0")).status_code for _ in range(5)]
    assert 500 not in statuses
    assert statuses[:3] == [200, 200, 200] and statuses[3:] == [429, 429]


async def test_store_down_fail_closed_tier_refuses_with_503(make_app, make_settings, private_redis):
    """With Redis down the auth tier (fail-closed) answers 503 with Retry-After, never 500."""
    app = make_app(make_settings(redis_url=private_redis.url))
    async with serve(app) as http:
        private_redis.stop()
        response = await http.get("/t/auth")
    assert response.status_code == 503
    assert response.json()["code"] == "DEPENDENCY_UNAVAILABLE"
    assert int(response.headers["retry-after"]) >= 1


async def test_recovery_after_the_store_returns_is_automatic(make_app, make_settings, private_redis):
    """When Redis comes back, decisions return to the shared store without a restart."""
    import redis.asyncio as aioredis

    settings = make_settings(redis_url=private_redis.url, rate_limits={"general": "100/minute"})
    app = make_app(settings)
    async with serve(app) as http:
        private_redis.stop()
        for _ in range(4):
            assert (await http.get("/t/auth")).status_code == 503
        private_redis.start()
        deadline = time.monotonic() + 10
        while (await http.get("/t/auth")).status_code == 503:
            assert time.monotonic() < deadline, "limiter never went back to Redis"
            await asyncio.sleep(0.2)
        client = aioredis.from_url(private_redis.url)
        try:
            keys = await client.keys(f"{settings.redis_prefix}rl:*")
        finally:
            await client.aclose()
    assert keys, "the decision after recovery was not made in Redis"


async def test_decisions_are_counted_in_metrics(make_app):
    """Allowed and denied decisions are counted per tier."""
    from prometheus_client import REGISTRY

    def value(decision: str) -> float:
        return (
            REGISTRY.get_sample_value("bastion_ratelimit_decisions_total", {"tier": "auth", "decision": decision})
            or 0.0
        )

    allowed, denied = value("allowed"), value("denied")
    async with serve(make_app(rate_limits={"auth": "1/minute"})) as http:
        await http.get("/t/auth")
        await http.get("/t/auth")
    assert value("allowed") == allowed + 1
    assert value("denied") == denied + 1
    assert math.isfinite(value("allowed"))
