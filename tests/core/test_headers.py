"""Edge stage 3: security headers, trusted hosts and CORS."""

from __future__ import annotations

from tests.conftest import serve

HELMET_PARITY = {
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "origin-agent-cluster": "?1",
    "x-dns-prefetch-control": "off",
    "x-download-options": "noopen",
    "x-permitted-cross-domain-policies": "none",
    "x-xss-protection": "0",
}


async def test_security_headers_are_on_every_response(make_app):
    """Success, client-error and server-error responses all carry the helmet-parity headers."""
    async with serve(make_app()) as http:
        for path in ["/health", "/nope", "/t/boom"]:
            response = await http.get(path)
            for name, value in HELMET_PARITY.items():
                assert response.headers.get(name) == value, (path, name)


async def test_hsts_only_in_production(make_app, make_settings):
    """Strict-Transport-Security is sent in production, not in development."""
    async with serve(make_app()) as http:
        assert "strict-transport-security" not in (await http.get("/health")).headers
    production = make_settings(
        env="production",
        crypto={"keys": {"k": "A" * 43 + "="}, "active_key_id": "k"},
        cron_secret="kY3v9QmTz2LwX8pR4nB7cD1fH6jG5sAe",
        allowed_hosts=["api.example.com", "localhost"],
    )
    async with serve(make_app(production)) as http:
        hsts = (await http.get("/health")).headers["strict-transport-security"]
    assert hsts == "max-age=31536000; includeSubDomains"


async def test_responses_do_not_disclose_the_stack(make_app):
    """No X-Powered-By, and Server names no framework, server or version."""
    async with serve(make_app()) as http:
        response = await http.get("/health")
    assert "x-powered-by" not in response.headers
    assert response.headers["server"] == "bastion"


async def test_api_responses_are_not_cached(make_app):
    """API responses default to Cache-Control: no-store."""
    async with serve(make_app()) as http:
        assert (await http.get("/t/slow?seconds=0")).headers["cache-control"] == "no-store"


async def test_a_route_may_set_its_own_policy(make_app):
    """A response that sets its own Cache-Control keeps it (security.txt is cacheable)."""
    async with serve(make_app()) as http:
        response = await http.get("/.well-known/security.txt")
    assert response.headers["cache-control"] == "max-age=86400"
    assert response.headers.get_list("cache-control") == ["max-age=86400"]


async def test_unknown_host_is_rejected(make_app):
    """A Host header outside ALLOWED_HOSTS gets a 400 problem."""
    async with serve(make_app(), base_url="http://evil.example") as http:
        response = await http.get("/health")
    assert response.status_code == 400
    assert response.json()["code"] == "INVALID_HOST"
    assert response.headers["content-type"] == "application/problem+json"


async def test_host_with_port_and_wildcard_subdomain_are_allowed(make_app):
    """``*.example.com`` admits sub-domains, and a port in Host does not matter."""
    app = make_app(allowed_hosts=["*.example.com"])
    async with serve(app, base_url="http://api.example.com:8443") as http:
        assert (await http.get("/health")).status_code == 200
    async with serve(make_app(allowed_hosts=["*.example.com"]), base_url="http://example.org") as http:
        assert (await http.get("/health")).status_code == 400


async def test_allowed_origin_is_echoed(make_app):
    """A request from an allowed origin gets Access-Control-Allow-Origin for it and Vary: Origin."""
    app = make_app(cors_origins=["https://app.example.com"])
    async with serve(app) as http:
        response = await http.get("/health", headers={"Origin": "https://app.example.com"})
    assert response.headers["access-control-allow-origin"] == "https://app.example.com"
    assert "Origin" in response.headers["vary"]
    assert "X-Request-ID" in response.headers["access-control-expose-headers"]


async def test_other_origins_get_no_cors_headers(make_app):
    """An origin outside the allow-list gets no Access-Control-Allow-Origin."""
    app = make_app(cors_origins=["https://app.example.com"])
    async with serve(app) as http:
        response = await http.get("/health", headers={"Origin": "https://evil.example"})
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers


async def test_preflight_from_an_allowed_origin(make_app):
    """A preflight from an allowed origin gets 204 with the allowed methods and requested headers."""
    app = make_app(cors_origins=["https://app.example.com"])
    async with serve(app) as http:
        response = await http.options(
            "/t/echo",
            headers={
                "Origin": "https://app.example.com",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type, idempotency-key",
            },
        )
    assert response.status_code == 204
    assert "POST" in response.headers["access-control-allow-methods"]
    assert response.headers["access-control-allow-headers"] == "content-type, idempotency-key"
    assert response.headers["access-control-allow-origin"] == "https://app.example.com"


async def test_preflight_from_another_origin_is_refused(make_app):
    """A preflight from an origin outside the allow-list gets a 403 problem."""
    app = make_app(cors_origins=["https://app.example.com"])
    async with serve(app) as http:
        response = await http.options(
            "/t/echo", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
        )
    assert response.status_code == 403
    assert "access-control-allow-origin" not in response.headers


async def test_credentials_are_allowed_only_when_configured(make_app):
    """With credentials on, the exact origin (never *) is echoed with Allow-Credentials."""
    app = make_app(cors_origins=["https://app.example.com"], cors_allow_credentials=True)
    async with serve(app) as http:
        response = await http.get("/health", headers={"Origin": "https://app.example.com"})
    assert response.headers["access-control-allow-credentials"] == "true"
    assert response.headers["access-control-allow-origin"] == "https://app.example.com"
