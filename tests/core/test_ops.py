"""Operations: probes, detailed health, security.txt, metrics, and the database going away."""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlsplit

import pytest

from tests.conftest import serve
from tests.tcp_proxy import TcpProxy

PRODUCTION = {
    "env": "production",
    "crypto": {"keys": {"k": "A" * 43 + "="}, "active_key_id": "k"},
    "cron_secret": "kY3v9QmTz2LwX8pR4nB7cD1fH6jG5sAe",
    "allowed_hosts": ["api.example.com", "localhost"],
}


async def test_liveness_probes_are_cheap_and_pass(make_app):
    """/health and /health/live answer pass in health+json without touching dependencies."""
    async with serve(make_app()) as http:
        for path in ["/health", "/health/live"]:
            response = await http.get(path)
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("application/health+json")
            assert response.json() == {"status": "pass"}


async def test_ready_checks_the_database(make_app):
    """/health/ready passes with the database check listed."""
    async with serve(make_app()) as http:
        response = await http.get("/health/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "pass", "checks": {"database": "pass"}}


async def test_ready_turns_503_at_once_when_draining(make_app):
    """The moment draining begins, readiness answers 503 (liveness still passes)."""
    app = make_app()
    async with serve(app) as http:
        app.platform.lifecycle.begin_drain()
        ready = await http.get("/health/ready")
        live = await http.get("/health/live")
    assert ready.status_code == 503
    assert ready.json()["status"] == "fail" and ready.json()["output"] == "draining"
    assert int(ready.headers["retry-after"]) >= 1
    assert live.status_code == 200


async def test_detailed_health_reports_dependencies_and_the_process(make_app):
    """/health/detailed lists each dependency with latency, version, uptime and memory."""
    async with serve(make_app()) as http:
        response = await http.get("/health/detailed")
    body = response.json()
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/health+json")
    assert body["status"] == "pass" and body["version"]
    database = body["checks"]["database:responseTime"][0]
    assert database["status"] == "pass" and database["observedUnit"] == "ms" and database["observedValue"] >= 0
    assert body["checks"]["uptime"][0]["observedValue"] >= 0
    assert body["checks"]["memory:utilization"][0]["observedValue"] > 10_000_000


async def test_detailed_health_needs_the_token_in_production(make_app):
    """In production the detailed report is refused without the health token and shown with it."""
    app = make_app(**PRODUCTION, health_token="probe-secret-123")
    async with serve(app) as http:
        anonymous = await http.get("/health/detailed")
        wrong = await http.get("/health/detailed", headers={"Authorization": "Bearer nope"})
        right = await http.get("/health/detailed", headers={"Authorization": "Bearer probe-secret-123"})
    assert anonymous.status_code == 401 and wrong.status_code == 401
    assert right.status_code == 200 and right.json()["status"] == "pass"


async def test_security_txt_follows_rfc_9116(make_app):
    """security.txt has the contact and an Expires less than a year ahead, as text/plain UTF-8."""
    async with serve(make_app(security_contact="mailto:sec@example.com")) as http:
        response = await http.get("/.well-known/security.txt")
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    fields = dict(line.split(": ", 1) for line in response.text.splitlines())
    assert fields["Contact"] == "mailto:sec@example.com"
    expires = dt.datetime.fromisoformat(fields["Expires"].replace("Z", "+00:00"))
    now = dt.datetime.now(dt.UTC)
    assert now + dt.timedelta(days=300) < expires < now + dt.timedelta(days=365)


async def test_metrics_expose_the_edge_instruments(make_app):
    """/metrics has request counts and latency by route template, in-flight, limits, breakers, memory."""
    async with serve(make_app()) as http:
        await http.get("/t/slow?seconds=0")
        await http.get("/no/such/path")
        text = (await http.get("/metrics")).text
    assert 'bastion_http_requests_total{method="GET",route="/t/slow",status_class="2xx"}' in text
    assert 'bastion_http_requests_total{method="GET",route="<unmatched>",status_class="4xx"}' in text
    assert 'bastion_http_request_duration_seconds_bucket{le="0.001",method="GET",route="/t/slow"' in text
    for name in [
        "bastion_http_requests_in_flight",
        "bastion_ratelimit_decisions_total",
        "bastion_ratelimit_bans_total",
        "bastion_circuit_breaker_state",
        "bastion_process_rss_bytes",
    ]:
        assert f"# TYPE {name}" in text, name
    assert "/no/such/path" not in text


async def test_metrics_token_protects_metrics(make_app):
    """With METRICS_TOKEN set, /metrics needs it."""
    async with serve(make_app(metrics_token="scrape-me")) as http:
        assert (await http.get("/metrics")).status_code == 401
        assert (await http.get("/metrics", headers={"Authorization": "Bearer scrape-me"})).status_code == 200


@pytest.mark.postgres
async def test_postgres_unreachable_is_503_and_recovers(make_app, postgres_url):
    """PostgreSQL going away gives 503 with Retry-After (not 500) and ready=503; both recover."""
    target = urlsplit(postgres_url.replace("+asyncpg", ""))
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 5432)
    await proxy.start()
    url = postgres_url.replace(f"{target.hostname}:{target.port or 5432}", f"127.0.0.1:{proxy.port}")
    app = make_app(database_url=url, db_timeout_seconds=1.0)
    try:
        async with serve(app) as http:
            assert (await http.get("/t/db")).json() == {"db": 1}
            await proxy.stop()
            down = await http.get("/t/db")
            app.platform.health._cached = None
            ready = await http.get("/health/ready")
            await proxy.start()
            app.platform.health._cached = None
            recovered = await http.get("/t/db")
            ready_again = await http.get("/health/ready")
    finally:
        await proxy.stop()
    assert down.status_code == 503
    assert down.json()["code"] == "DATABASE_UNAVAILABLE"
    assert int(down.headers["retry-after"]) >= 1
    assert ready.status_code == 503 and ready.json()["checks"]["database"] == "fail"
    assert recovered.status_code == 200 and ready_again.status_code == 200


async def test_ready_checks_the_broker_when_configured(make_app, amqp_url):
    """With AMQP_URL set, readiness includes RabbitMQ and passes while it answers."""
    async with serve(make_app(amqp_url=amqp_url)) as http:
        response = await http.get("/health/ready")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "pass", "broker": "pass"}


async def test_unreachable_broker_fails_readiness(make_app):
    """A configured broker that does not answer makes readiness 503, naming the broker."""
    from tests.conftest import free_port

    async with serve(make_app(amqp_url=f"amqp://guest:guest@127.0.0.1:{free_port()}/")) as http:
        response = await http.get("/health/ready")
    assert response.status_code == 503
    assert response.json()["checks"]["broker"] == "fail"
