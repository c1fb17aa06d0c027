"""The resolver's cache: shared reads on a miss, renewal before the TTL ends, exact invalidation."""

from __future__ import annotations

import asyncio
import time

import pytest

from bastion.core.edge.asgi import RequestContext
from bastion.core.principal import Principal
from bastion.identity.cache import CredentialCache
from tests.conftest import serve
from tests.identity.conftest import SQLITE_ONLY, bearer, new_key, new_resolver, register, service_of


def _context(header: bytes) -> RequestContext:
    return RequestContext("r1", 0.0, "198.51.100.7", "198.51.100.7", authorization=header)


@SQLITE_ONLY
async def test_concurrent_misses_share_one_database_read(identity_app, monkeypatch):
    """Fifty requests arriving together with an uncached key cost one lookup, and all are authenticated."""
    app = identity_app()
    async with serve(app) as http:
        session = await register(http)
        key = await new_key(http, session["access_token"])
        service = service_of(app)
        calls = 0
        original = service.credentials.resolve_api_key

        async def counted(token: str):
            nonlocal calls
            calls += 1
            await asyncio.sleep(0.05)  # a slow database: the others arrive while it runs
            return await original(token)

        monkeypatch.setattr(service.credentials, "resolve_api_key", counted)
        resolver = new_resolver(service)
        header = f"Bearer {key['key']}".encode()
        found = await asyncio.gather(*(resolver({"method": "GET"}, _context(header)) for _ in range(50)))
    assert calls == 1
    assert all(p is not None and p.id == key["id"] for p in found)


@SQLITE_ONLY
async def test_a_busy_key_is_renewed_before_its_entry_ends(identity_app):
    """Near the end of its TTL an entry is still served while a background read replaces it."""
    app = identity_app(identity={"cache_ttl_seconds": 5.0})
    async with serve(app) as http:
        session = await register(http)
        key = await new_key(http, session["access_token"])
        service = service_of(app)
        resolver = new_resolver(service)
        header = f"Bearer {key['key']}".encode()
        await resolver({"method": "GET"}, _context(header))
        old = service.cache._entries[header]
        old.expires = time.monotonic() + 0.5  # ends in 0.5 s: inside the renewal window
        served = await resolver({"method": "GET"}, _context(header))
        renewal = next(t for t in app.platform.lifecycle._tasks if t.get_name() == "identity-renew")
        await renewal
        new = service.cache._entries[header]
    assert served is not None and served.id == key["id"]
    assert new is not old and new.principal == old.principal and new.expires > old.expires


def test_an_entry_read_before_an_invalidation_is_not_cached():
    """A lookup that started before a revocation of its tags is not stored (it may predate the revocation)."""
    now = [100.0]
    cache = CredentialCache(ttl=10.0, max_entries=100, clock=lambda: now[0])
    principal = Principal(kind="api_key", id="k1")
    started = now[0]
    now[0] = 100.5
    cache.invalidate(["k:k1"])
    cache.put(b"key", principal, tags=["k:k1"], created=started)
    assert cache.get(b"key", 101.0) is None
    cache.put(b"key", principal, tags=["k:k1"], created=101.0)
    assert cache.get(b"key", 101.5) is not None


def test_invalidation_drops_only_tagged_entries():
    """Invalidating a user's tag drops that user's entries and leaves others'."""
    cache = CredentialCache(ttl=10.0, max_entries=100, clock=lambda: 5.0)
    cache.put(b"a", Principal(kind="user", id="u1"), tags=["u:u1"], created=1.0)
    cache.put(b"b", Principal(kind="user", id="u2"), tags=["u:u2"], created=1.0)
    cache.invalidate(["u:u1"])
    assert cache.get(b"a", 6.0) is None and cache.get(b"b", 6.0) is not None


def test_entries_end_with_their_credential():
    """An entry never outlives the credential's own expiry, and is then not renewable."""
    cache = CredentialCache(ttl=10.0, max_entries=100)
    cache.put(b"a", Principal(kind="user", id="u1"), created=0.0, lifetime=2.0)
    entry = cache.get(b"a", 1.0)
    assert entry is not None and entry.expires == 2.0 and not cache.due(entry, 1.9)
    assert cache.get(b"a", 2.0) is None


def test_the_cache_is_bounded():
    """Past max_entries the oldest entries are evicted."""
    cache = CredentialCache(ttl=10.0, max_entries=100)
    for i in range(250):
        cache.put(str(i).encode(), Principal(kind="user", id=str(i)), created=0.0)
    assert len(cache) <= 100 and cache.get(b"249", 1.0) is not None and cache.get(b"0", 1.0) is None


@pytest.mark.postgres
async def test_a_database_outage_is_503_not_an_unknown_key(identity_settings, make_app, postgres_url):
    """An uncached key during a database outage gets 503 DATABASE_UNAVAILABLE (not 401), and works again
    once the database is back (the failure was not cached)."""
    from urllib.parse import urlsplit

    from tests.identity.conftest import probe_module
    from tests.support import routes_module
    from tests.tcp_proxy import TcpProxy

    target = urlsplit(postgres_url.replace("+asyncpg", ""))
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 5432)
    await proxy.start()
    url = postgres_url.replace(f"{target.hostname}:{target.port or 5432}", f"127.0.0.1:{proxy.port}")
    app = make_app(
        identity_settings(database_url=url, auto_migrate=True, db_timeout_seconds=1.0),
        extra=(routes_module, probe_module),
    )
    try:
        async with serve(app) as http:
            session = await register(http)
            key = await new_key(http, session["access_token"])
            await proxy.stop()
            down = await http.get("/t/id/whoami", headers={"Authorization": f"Bearer {key['key']}"})
            await proxy.start()
            back = await http.get("/t/id/whoami", headers={"Authorization": f"Bearer {key['key']}"})
    finally:
        await proxy.stop()
    assert down.status_code == 503 and down.json()["code"] == "DATABASE_UNAVAILABLE"
    assert back.status_code == 200


@pytest.mark.postgres
async def test_a_partitioned_database_serves_known_keys_and_keeps_revocations(
    identity_settings, make_app, postgres_url, redis_url
):
    """PostgreSQL partitioned (connections accepted, never answered): a key seen before keeps working from the
    cache's last known answer after its TTL (with no database wait once the breaker is open), a key revoked
    before the partition stays refused (the revocation came on the Redis bus), an unseen key gets 503 and,
    once the breaker opens, at once."""
    import time
    from urllib.parse import urlsplit

    from tests.identity.conftest import probe_module
    from tests.support import routes_module
    from tests.tcp_proxy import TcpProxy

    target = urlsplit(postgres_url.replace("+asyncpg", ""))
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 5432)
    await proxy.start()
    url = postgres_url.replace(f"{target.hostname}:{target.port or 5432}", f"127.0.0.1:{proxy.port}")
    settings = identity_settings(
        {"cache_ttl_seconds": 0.5, "cache_stale_seconds": 60},
        database_url=url,
        auto_migrate=True,
        db_timeout_seconds=1.0,
        db_statement_timeout_seconds=1.0,
        redis_url=redis_url,
    )
    app = make_app(settings, extra=(routes_module, probe_module))
    try:
        async with serve(app) as http:
            session = await register(http)
            kept, revoked, unseen = [await new_key(http, session["access_token"]) for _ in range(3)]
            for key in (kept, revoked):
                assert (await http.get("/t/id/whoami", headers=bearer(key["key"]))).status_code == 200
            await http.delete(f"/api/keys/{revoked['id']}", headers=bearer(session["access_token"]))
            proxy.partition()
            await asyncio.sleep(0.6)  # past the TTL: every entry now needs the database, which does not answer
            began = time.monotonic()
            served = await http.get("/t/id/whoami", headers=bearer(kept["key"]))
            took = time.monotonic() - began
            refused = await http.get("/t/id/whoami", headers=bearer(revoked["key"]))
            unknown = [(await http.get("/t/id/whoami", headers=bearer(unseen["key"]))) for _ in range(7)]
            began = time.monotonic()
            fast = await http.get("/t/id/whoami", headers=bearer(unseen["key"]))
            fast_took = time.monotonic() - began
            began = time.monotonic()
            served_again = await http.get("/t/id/whoami", headers=bearer(kept["key"]))
            served_again_took = time.monotonic() - began
            began = time.monotonic()
            listed = await http.get("/api/keys", headers=bearer(kept["key"]))
            listed_took = time.monotonic() - began
    finally:
        proxy.heal()
        await proxy.stop()
    assert served.status_code == 200 and served.json()["id"] == kept["id"]
    assert took < 2.8  # the idle connection's ping (1 s) and a new connection's connect (1 s), not more
    assert served_again.status_code == 200 and served_again_took < 0.5  # breaker open: no database wait at all
    # the key routes share the module's breaker: answered at once, not after the database's timeout
    assert listed.status_code == 503 and listed.json()["code"] == "CIRCUIT_OPEN" and listed_took < 0.5
    assert refused.status_code in (401, 503) and refused.status_code != 200
    assert {r.status_code for r in unknown} == {503}
    assert fast.status_code == 503 and fast.json()["code"] == "CIRCUIT_OPEN" and fast_took < 0.5
