"""The seed's /test/... endpoints: served in development, absent (404 and from OpenAPI) in production."""

from __future__ import annotations

import pytest

from tests.conftest import serve
from tests.workflows.conftest import sign_up

SQLITE = pytest.mark.parametrize("database", ["sqlite"], indirect=True)
PRODUCTION = {
    "env": "production",
    "crypto": {"keys": {"k": "A" * 43 + "="}, "active_key_id": "k"},
    "cron_secret": "kY3v9QmTz2LwX8pR4nB7cD1fH6jG5sAe",
    "allowed_hosts": ["api.example.com", "localhost"],
}
PATHS = [("POST", "/test/analyze"), ("GET", "/test/workflows"), ("GET", "/test/history"),
         ("DELETE", "/test/history"), ("GET", "/test/health")]  # fmt: skip


@SQLITE
async def test_development_serves_the_five_test_endpoints(wf_app):
    """In development: samples, an unstored analysis, the engine's health, the caller's history and its clearing."""
    app = wf_app()
    async with serve(app) as http:
        user = await sign_up(http, app, "dev@example.com")
        samples = (await http.get("/test/workflows")).json()
        report = (await http.post("/test/analyze", json=samples[1])).json()
        health = (await http.get("/test/health")).json()
        await http.post("/api/analyze", json={"definition": samples[1]}, headers=user.headers)
        history = (await http.get("/test/history", headers=user.headers)).json()
        cleared = (await http.request("DELETE", "/test/history", headers=user.headers)).json()
        after = (await http.get("/test/history", headers=user.headers)).json()
    assert [s["id"] for s in samples] == ["sample_healthy", "sample_broken"]
    assert report["score"] < 50 and report["issues"][0]["severity"] == "critical"
    assert health["rules"] >= 30 and health["samples"][0]["issues"] == 0
    assert len(history["items"]) == 1 and cleared == {"deleted": 1} and after["items"] == []


@SQLITE
async def test_production_has_no_test_endpoints(wf_app):
    """In production every /test/... path is a 404 and none is in the OpenAPI document."""
    app = wf_app(**PRODUCTION)
    async with serve(app) as http:
        answers = [await http.request(method, path, json={} if method == "POST" else None) for method, path in PATHS]
        schema = (await http.get("/schema/openapi.json")).json()
    assert [a.status_code for a in answers] == [404] * 5
    assert not [p for p in schema["paths"] if p.startswith("/test")]
    assert "/api/analyze" in schema["paths"]
