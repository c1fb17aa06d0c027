"""Brute force and enumeration: failed sign-ins look alike, and are limited per account and per address."""

from __future__ import annotations

import statistics
import time

import pytest

from tests.conftest import serve
from tests.identity.conftest import PASSWORD, SQLITE_ONLY, client_for, register


async def test_unknown_user_and_wrong_password_look_the_same(identity_app):
    """Same status, same code and the same detail whether the account exists or not."""
    async with serve(identity_app()) as http:
        await register(http)
        unknown = await http.post("/auth/login", json={"email": "nobody@example.com", "password": "whatever1"})
        wrong = await http.post("/auth/login", json={"email": "ada@example.com", "password": "whatever1"})
        malformed = await http.post("/auth/login", json={"email": "not-an-address", "password": "whatever1"})
    assert unknown.status_code == wrong.status_code == malformed.status_code == 401
    strip = lambda r: {k: v for k, v in r.json().items() if k != "request_id"}  # noqa: E731
    assert strip(unknown) == strip(wrong) == strip(malformed)
    assert strip(wrong)["code"] == "INVALID_CREDENTIALS"


@SQLITE_ONLY
async def test_failed_login_log_lines_do_not_reveal_the_account(identity_app, logs):
    """The log says a sign-in failed, not whether the account exists, and never the password."""
    async with serve(identity_app()) as http:
        await register(http)
        await http.post("/auth/login", json={"email": "nobody@example.com", "password": "hunter2-secret"})
        await http.post("/auth/login", json={"email": "ada@example.com", "password": "hunter2-secret"})
    lines = [line for line in logs() if line.get("event") == "sign-in failed"]
    assert len(lines) == 2 and lines[0].keys() == lines[1].keys()
    assert all("hunter2" not in str(line) for line in logs())


@SQLITE_ONLY
async def test_unknown_user_and_wrong_password_take_similar_time(identity_app):
    """With real argon2 work, a login for an unknown account takes within 2x of a wrong password."""
    app = identity_app(
        identity={"argon2_time_cost": 2, "argon2_memory_kib": 16_384}, rate_limits={"auth": "1000/minute"}
    )
    async with serve(app) as http:
        await register(http)
        await http.post("/auth/login", json={"email": "nobody@example.com", "password": "warm-up-1"})
        unknown, known = [], []
        for i in range(8):  # interleaved, so that drift in the machine hits both alike
            for email, sink in (("nobody@example.com", unknown), ("ada@example.com", known)):
                started = time.perf_counter()
                response = await http.post("/auth/login", json={"email": email, "password": f"wrong-{i}"})
                sink.append(time.perf_counter() - started)
                assert response.status_code == 401
    ratio = statistics.median(unknown) / statistics.median(known)
    assert 0.5 <= ratio <= 2.0, (ratio, unknown, known)
    assert statistics.median(known) > 0.005  # the hash is really being computed


async def test_login_is_limited_per_account_across_addresses(identity_app):
    """The sixth attempt on one account within a minute is refused even from a new address each time."""
    app = identity_app()
    async with serve(app) as http:
        await register(http)
        statuses = []
        for i in range(6):
            async with client_for(app, f"203.0.113.{i + 1}") as other:
                response = await other.post("/auth/login", json={"email": "ada@example.com", "password": "nope-nope"})
                statuses.append(response.status_code)
        refused = response
        async with client_for(app, "203.0.113.99") as fresh:
            other_account = await fresh.post("/auth/login", json={"email": "eve@example.com", "password": "nope"})
            right_password = await fresh.post("/auth/login", json={"email": "ada@example.com", "password": PASSWORD})
    assert statuses == [401] * 5 + [429]
    assert refused.json()["code"] == "TOO_MANY_ATTEMPTS" and int(refused.headers["retry-after"]) >= 1
    assert other_account.status_code == 401
    assert right_password.status_code == 429  # the account's limit holds for everybody until it refills


@SQLITE_ONLY
async def test_unknown_accounts_are_limited_like_real_ones(identity_app):
    """Probing a non-existent account hits the same per-account limit (no tell-tale difference)."""
    app = identity_app()
    async with serve(app):
        statuses = []
        for i in range(6):
            async with client_for(app, f"203.0.113.{i + 1}") as other:
                response = await other.post("/auth/login", json={"email": "ghost@example.com", "password": "x"})
                statuses.append(response.status_code)
    assert statuses == [401] * 5 + [429]


async def test_login_is_limited_per_address(identity_app):
    """One address trying many accounts is stopped by the auth tier after five attempts."""
    async with serve(identity_app()) as http:
        statuses = [
            (await http.post("/auth/login", json={"email": f"user{i}@example.com", "password": "x"})).status_code
            for i in range(6)
        ]
        refused = await http.post("/auth/login", json={"email": "user9@example.com", "password": "x"})
    assert statuses == [401] * 5 + [429]
    assert refused.json()["code"] == "RATE_LIMITED" and refused.json()["tier"] == "auth"


@pytest.mark.redis
async def test_per_account_limit_is_shared_by_instances(identity_settings, make_app, redis_url):
    """With Redis, attempts on one account count across instances."""
    from tests.identity.conftest import probe_module
    from tests.support import routes_module

    settings = identity_settings(redis_url=redis_url)
    one, two = (make_app(settings, extra=(routes_module, probe_module)) for _ in range(2))
    async with serve(one), serve(two):
        statuses = []
        for i in range(6):
            async with client_for(one if i % 2 else two, f"203.0.113.{i + 1}") as http:
                statuses.append(
                    (await http.post("/auth/login", json={"email": "ada@example.com", "password": "x"})).status_code
                )
    assert statuses == [401] * 5 + [429]


@SQLITE_ONLY
async def test_sign_in_outcomes_are_counted(identity_app):
    """Failed and successful sign-ins show in bastion_identity_events_total."""
    from prometheus_client import REGISTRY

    def count(outcome: str) -> float:
        return REGISTRY.get_sample_value("bastion_identity_events_total", {"event": "login", "outcome": outcome}) or 0.0

    failed, ok = count("failed"), count("ok")
    async with serve(identity_app()) as http:
        await register(http)
        await http.post("/auth/login", json={"email": "ada@example.com", "password": "wrong-one"})
        await http.post("/auth/login", json={"email": "ada@example.com", "password": PASSWORD})
    assert count("failed") == failed + 1 and count("ok") == ok + 1
