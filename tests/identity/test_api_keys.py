"""API keys: shown once, stored hashed, scoped, capped by plan, expiring, and revoked everywhere at once."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select, text, update

from bastion.identity import tokens
from bastion.identity.models import ApiKey
from tests.conftest import serve
from tests.identity.conftest import SQLITE_ONLY, bearer, new_key, register, service_of


async def test_key_is_shown_once_and_stored_as_a_hash(identity_app):
    """Creation returns the whole key once; listings show only its prefix; the database holds a digest."""
    app = identity_app()
    async with serve(app) as http:
        session = await register(http)
        created = await new_key(http, session["access_token"], name="deploy", scopes=["kv", "ai"], app="notes")
        listed = (await http.get("/api/keys", headers=bearer(session["access_token"]))).json()
        async with app.platform.db.session() as db:
            row = (await db.execute(text("SELECT * FROM identity_api_keys"))).mappings().one()
    assert created["key"].startswith(created["prefix"] + "_") and created["prefix"] == "bsk_" + created["id"]
    assert listed == [{k: v for k, v in created.items() if k != "key"}]
    assert row["secret_hash"] == tokens.digest(created["key"])
    assert not any(created["key"] in str(value) for value in row.values())


async def test_key_authenticates_with_its_scopes_and_owner(identity_app):
    """A key is an api_key principal with its own scopes, its owner's role, and its app."""
    async with serve(identity_app()) as http:
        session = await register(http)
        key = await new_key(http, session["access_token"], scopes=["kv"], app="notes")
        me = (await http.get("/t/id/whoami", headers=bearer(key["key"]))).json()
        scoped = await http.get("/t/id/kv", headers=bearer(key["key"]))
    assert me["kind"] == "api_key" and me["id"] == key["id"]
    assert me["scopes"] == ["kv"] and me["roles"] == ["user"]
    assert me["attrs"]["user_id"] == session["user"]["id"] and me["attrs"]["app"] == "notes"
    assert me["attrs"]["plan"] == "free" and me["attrs"]["email"] == "ada@example.com"
    assert scoped.status_code == 200


@SQLITE_ONLY
async def test_key_without_the_scope_is_403(identity_app):
    """A route's scope guard refuses a key that lacks the scope."""
    async with serve(identity_app()) as http:
        session = await register(http)
        key = await new_key(http, session["access_token"], scopes=["ai"])
        response = await http.get("/t/id/kv", headers=bearer(key["key"]))
    assert response.status_code == 403 and response.json()["code"] == "FORBIDDEN"


@SQLITE_ONLY
async def test_a_key_cannot_mint_broader_keys(identity_app):
    """A key with the keys scope may create keys only within its own scopes."""
    async with serve(identity_app()) as http:
        session = await register(http)
        key = await new_key(http, session["access_token"], scopes=["keys", "kv"])
        narrower = await http.post("/api/keys", json={"name": "n", "scopes": ["kv"]}, headers=bearer(key["key"]))
        broader = await http.post("/api/keys", json={"name": "b", "scopes": ["ai"]}, headers=bearer(key["key"]))
        no_keys_scope = await new_key(http, session["access_token"], scopes=["kv"])
        listing = await http.get("/api/keys", headers=bearer(no_keys_scope["key"]))
    assert narrower.status_code == 201
    assert broader.status_code == 403 and broader.json()["code"] == "SCOPE_NOT_GRANTABLE"
    assert listing.status_code == 403


@SQLITE_ONLY
async def test_wrong_secret_with_a_real_key_id_is_refused(identity_app):
    """Knowing a key's visible prefix is not enough: the secret part must match its hash."""
    async with serve(identity_app()) as http:
        session = await register(http)
        key = await new_key(http, session["access_token"])
        forged = key["prefix"] + "_" + "A" * 43
        response = await http.get("/t/id/whoami", headers=bearer(forged))
    assert response.status_code == 401 and response.json()["code"] == "INVALID_TOKEN"


@SQLITE_ONLY
async def test_malformed_key_is_anonymous_on_open_routes(identity_app):
    """A garbage key makes the request anonymous: open routes still answer, guarded ones say 401."""
    async with serve(identity_app()) as http:
        open_route = await http.get("/t/principal", headers=bearer("bsk_nonsense"))
        guarded = await http.get("/t/id/whoami", headers=bearer("bsk_nonsense"))
    assert open_route.status_code == 200 and open_route.json()["principal"] is None
    assert guarded.status_code == 401


@SQLITE_ONLY
async def test_free_plan_caps_live_keys(identity_app):
    """A free user holds at most the plan's number of live keys; revoking one frees a slot."""
    async with serve(identity_app(identity={"plans": {"free": {"api_keys": 2}}})) as http:
        session = await register(http)
        first = await new_key(http, session["access_token"])
        await new_key(http, session["access_token"])
        refused = await http.post("/api/keys", json={"name": "third"}, headers=bearer(session["access_token"]))
        await http.delete(f"/api/keys/{first['id']}", headers=bearer(session["access_token"]))
        again = await http.post("/api/keys", json={"name": "third"}, headers=bearer(session["access_token"]))
    assert refused.status_code == 403 and refused.json()["code"] == "PLAN_LIMIT_REACHED"
    assert again.status_code == 201


async def test_expired_key_is_refused(identity_app):
    """A key past its expiry authenticates no more."""
    app = identity_app()
    async with serve(app) as http:
        session = await register(http)
        key = await new_key(http, session["access_token"], expires_in_days=1)
        async with app.platform.db.session() as db, db.begin():
            await db.execute(
                update(ApiKey)
                .where(ApiKey.id == key["id"])
                .values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
            )
        response = await http.get("/t/id/whoami", headers=bearer(key["key"]))
    assert response.status_code == 401


@SQLITE_ONLY
async def test_another_users_key_cannot_be_revoked(identity_app):
    """DELETE on someone else's key is 404, and the key keeps working."""
    async with serve(identity_app()) as http:
        ada = await register(http)
        eve = await register(http, email="eve@example.com")
        key = await new_key(http, ada["access_token"])
        response = await http.delete(f"/api/keys/{key['id']}", headers=bearer(eve["access_token"]))
        still = await http.get("/t/id/whoami", headers=bearer(key["key"]))
    assert response.status_code == 404 and response.json()["code"] == "API_KEY_NOT_FOUND"
    assert still.status_code == 200


async def test_revoked_key_is_refused_at_once_on_the_same_instance(identity_app):
    """A cached key is refused on the very next request after DELETE /api/keys/{id}."""
    async with serve(identity_app()) as http:
        session = await register(http)
        key = await new_key(http, session["access_token"])
        assert (await http.get("/t/id/whoami", headers=bearer(key["key"]))).status_code == 200
        assert (await http.delete(f"/api/keys/{key['id']}", headers=bearer(session["access_token"]))).status_code == 204
        response = await http.get("/t/id/whoami", headers=bearer(key["key"]))
    assert response.status_code == 401


async def _revoke_on_one_refuse_on_two(one, two) -> None:
    async with serve(one) as a, serve(two) as b:
        session = await register(a)
        key = await new_key(a, session["access_token"])
        assert (await b.get("/t/id/whoami", headers=bearer(key["key"]))).status_code == 200  # cached on two
        assert (await a.delete(f"/api/keys/{key['id']}", headers=bearer(session["access_token"]))).status_code == 204
        response = await b.get("/t/id/whoami", headers=bearer(key["key"]))
    assert response.status_code == 401


@pytest.mark.redis
async def test_revoked_key_is_refused_on_a_second_instance_at_once(identity_settings, make_app, database, redis_url):
    """Two app instances sharing Redis: a key revoked on one is refused by the other on the next request."""
    settings = identity_settings(redis_url=redis_url, **database)
    from tests.identity.conftest import probe_module
    from tests.support import routes_module

    await _revoke_on_one_refuse_on_two(
        make_app(settings, extra=(routes_module, probe_module)), make_app(settings, extra=(routes_module, probe_module))
    )


@pytest.mark.postgres
async def test_revoked_key_is_refused_on_a_second_instance_over_postgres_notify(
    identity_settings, make_app, postgres_url
):
    """Two instances on PostgreSQL without Redis: LISTEN/NOTIFY carries the revocation at once."""
    settings = identity_settings(database_url=postgres_url, auto_migrate=True)
    from tests.identity.conftest import probe_module
    from tests.support import routes_module

    one = make_app(settings, extra=(routes_module, probe_module))
    two = make_app(settings, extra=(routes_module, probe_module))
    assert type(service_of(two).bus).__name__ == "PostgresBus"
    await _revoke_on_one_refuse_on_two(one, two)


@SQLITE_ONLY
async def test_last_used_time_is_recorded_in_batches(identity_app):
    """Using a key records its last-used time when the batch is written (no write per request)."""
    app = identity_app()
    async with serve(app) as http:
        session = await register(http)
        key = await new_key(http, session["access_token"])
        await http.get("/t/id/whoami", headers=bearer(key["key"]))
        async with app.platform.db.session() as db:
            before = await db.scalar(select(ApiKey.last_used_at).where(ApiKey.id == key["id"]))
        await service_of(app).flush_touches()
        listed = (await http.get("/api/keys", headers=bearer(session["access_token"]))).json()
    assert before is None
    assert listed[0]["last_used_at"] is not None
