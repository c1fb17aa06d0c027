"""Idempotency-Key on POST routes, on the memory store and on Redis across two instances."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import serve


@pytest.fixture(params=["memory", "redis"])
def idem_settings(request, make_settings):
    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        return make_settings(redis_url=url)
    return make_settings()


async def test_same_key_and_body_replays_the_first_response(make_app, idem_settings):
    """A retry with the same key and body gets the stored response, marked as replayed."""
    async with serve(make_app(idem_settings)) as http:
        first = await http.post("/t/idem", json={"name": "a"}, headers={"Idempotency-Key": "k-1"})
        second = await http.post("/t/idem", json={"name": "a"}, headers={"Idempotency-Key": "k-1"})
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers


async def test_same_key_with_another_body_is_422(make_app, idem_settings):
    """Reusing a key for a different request is refused, and the first result is untouched."""
    async with serve(make_app(idem_settings)) as http:
        first = await http.post("/t/idem", json={"name": "a"}, headers={"Idempotency-Key": "k-2"})
        other = await http.post("/t/idem", json={"name": "b"}, headers={"Idempotency-Key": "k-2"})
        again = await http.post("/t/idem", json={"name": "a"}, headers={"Idempotency-Key": "k-2"})
    assert other.status_code == 422 and other.json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert again.json() == first.json()


async def test_requests_without_a_key_are_not_deduplicated(make_app, idem_settings):
    """Without Idempotency-Key every POST runs."""
    async with serve(make_app(idem_settings)) as http:
        one = await http.post("/t/idem", json={"name": "a"})
        two = await http.post("/t/idem", json={"name": "a"})
    assert one.json()["serial"] != two.json()["serial"]


async def test_concurrent_duplicates_run_once(make_app, idem_settings):
    """Of concurrent requests with one key, one runs; the others get 409 or the replay, never a 2nd run."""
    async with serve(make_app(idem_settings)) as http:
        responses = await asyncio.gather(
            *[http.post("/t/idem", json={"name": "c"}, headers={"Idempotency-Key": "k-3"}) for _ in range(20)]
        )
    created = {r.json()["serial"] for r in responses if r.status_code == 201}
    assert len(created) == 1
    assert {r.status_code for r in responses} <= {201, 409}
    conflict = next((r for r in responses if r.status_code == 409), None)
    if conflict is not None:
        assert conflict.json()["code"] == "IDEMPOTENCY_IN_PROGRESS" and conflict.headers["retry-after"]


async def test_server_errors_are_not_stored(make_app, idem_settings):
    """A 5xx releases the key, so the client's retry runs again instead of replaying the failure."""
    async with serve(make_app(idem_settings)) as http:
        first = await http.post("/t/idem-fail", json={"name": "a"}, headers={"Idempotency-Key": "k-4"})
        second = await http.post("/t/idem-fail", json={"name": "a"}, headers={"Idempotency-Key": "k-4"})
    assert first.status_code == second.status_code == 500
    assert "idempotent-replayed" not in second.headers


async def test_keys_are_scoped_to_the_caller(make_app, idem_settings):
    """Two clients using the same key do not see each other's responses."""
    app = make_app(idem_settings)
    async with serve(app, client=("198.51.100.1", 1)) as one, serve(app, client=("198.51.100.2", 1)) as two:
        a = await one.post("/t/idem", json={"name": "a"}, headers={"Idempotency-Key": "shared"})
        b = await two.post("/t/idem", json={"name": "a"}, headers={"Idempotency-Key": "shared"})
    assert a.json()["serial"] != b.json()["serial"]
    assert "idempotent-replayed" not in b.headers


async def test_malformed_key_is_400(make_app, idem_settings):
    """An Idempotency-Key that is empty, too long or not visible ASCII is refused."""
    async with serve(make_app(idem_settings)) as http:
        response = await http.post("/t/idem", json={"name": "a"}, headers={"Idempotency-Key": "x" * 300})
    assert response.status_code == 400


@pytest.mark.redis
async def test_replay_works_across_instances(make_app, make_settings, redis_url):
    """With Redis, a retry that lands on another instance gets the first instance's response."""
    settings = make_settings(redis_url=redis_url)
    async with serve(make_app(settings)) as a, serve(make_app(settings)) as b:
        first = await a.post("/t/idem", json={"name": "x"}, headers={"Idempotency-Key": "k-5"})
        second = await b.post("/t/idem", json={"name": "x"}, headers={"Idempotency-Key": "k-5"})
    assert second.json() == first.json() and second.headers["idempotent-replayed"] == "true"


async def test_store_down_refuses_keyed_requests(make_app, make_settings, private_redis):
    """If the idempotency store is down, a request that asked for it is refused with 503, not run."""
    app = make_app(make_settings(redis_url=private_redis.url, rate_limits={"general": "100/minute"}))
    async with serve(app) as http:
        private_redis.stop()
        response = await http.post("/t/idem", json={"name": "a"}, headers={"Idempotency-Key": "k-6"})
    assert response.status_code == 503 and response.json()["code"] == "DEPENDENCY_UNAVAILABLE"
