"""Edge stage 1: request ids, response time, and the client address behind (or not behind) proxies."""

from __future__ import annotations

import re

from tests.conftest import serve


async def test_request_id_is_generated_and_echoed(make_app):
    """Every response carries a generated X-Request-ID, different for each request."""
    async with serve(make_app()) as http:
        first = await http.get("/health")
        second = await http.get("/health")
    assert re.fullmatch(r"[0-9a-f]{22}", first.headers["x-request-id"])
    assert first.headers["x-request-id"] != second.headers["x-request-id"]


async def test_sane_inbound_request_id_is_kept(make_app):
    """A caller's X-Request-ID that looks like an id is echoed unchanged."""
    async with serve(make_app()) as http:
        response = await http.get("/health", headers={"X-Request-ID": "upstream-42.a:b_c"})
    assert response.headers["x-request-id"] == "upstream-42.a:b_c"


async def test_malformed_inbound_request_id_is_replaced(make_app):
    """An X-Request-ID with spaces, markup or excessive length is not trusted."""
    async with serve(make_app()) as http:
        for bad in ["has space", "<script>", "x" * 129, "a\tb"]:
            response = await http.get("/health", headers={"X-Request-ID": bad})
            assert response.headers["x-request-id"] != bad
            assert re.fullmatch(r"[0-9a-f]{22}", response.headers["x-request-id"])


async def test_response_time_is_reported(make_app):
    """X-Response-Time gives the time to the response head in milliseconds."""
    async with serve(make_app()) as http:
        response = await http.get("/t/slow", params={"seconds": 0.05})
    value = response.headers["x-response-time"]
    assert value.endswith("ms")
    assert float(value[:-2]) >= 50.0


async def test_spoofed_forwarded_for_is_ignored(make_app):
    """X-Forwarded-For from a peer that is not a trusted proxy changes nothing."""
    app = make_app(trusted_proxies=["10.0.0.0/8"])
    async with serve(app, client=("198.51.100.7", 1000)) as http:
        response = await http.get("/t/principal", headers={"X-Forwarded-For": "1.2.3.4"})
    assert response.json()["client"] == "198.51.100.7"


async def test_forwarded_for_is_believed_from_a_trusted_proxy(make_app):
    """Behind a trusted proxy the client is the rightmost address that is not a trusted hop."""
    app = make_app(trusted_proxies=["10.0.0.0/8"])
    async with serve(app, client=("10.0.0.5", 1000)) as http:
        response = await http.get("/t/principal", headers={"X-Forwarded-For": "6.6.6.6, 203.0.113.9, 10.1.2.3"})
    # 10.1.2.3 is another trusted hop; 203.0.113.9 is what our proxies saw; 6.6.6.6 is the client's claim
    assert response.json()["client"] == "203.0.113.9"


async def test_malformed_forwarded_for_falls_back_to_the_last_good_hop(make_app):
    """A hop that is not an address stops the walk; nothing to its left is believed."""
    app = make_app(trusted_proxies=["10.0.0.0/8"])
    async with serve(app, client=("10.0.0.5", 1000)) as http:
        response = await http.get("/t/principal", headers={"X-Forwarded-For": "6.6.6.6, not-an-ip"})
    assert response.json()["client"] == "10.0.0.5"


async def test_rate_limit_keys_on_the_forwarded_client(make_app):
    """Clients behind one trusted proxy get separate rate-limit buckets."""
    app = make_app(trusted_proxies=["10.0.0.0/8"], rate_limits={"general": "2/minute"})
    async with serve(app, client=("10.0.0.5", 1000)) as http:
        for _ in range(2):
            assert (await http.get("/t/slow?seconds=0", headers={"X-Forwarded-For": "203.0.113.1"})).status_code == 200
        assert (await http.get("/t/slow?seconds=0", headers={"X-Forwarded-For": "203.0.113.1"})).status_code == 429
        assert (await http.get("/t/slow?seconds=0", headers={"X-Forwarded-For": "203.0.113.2"})).status_code == 200
