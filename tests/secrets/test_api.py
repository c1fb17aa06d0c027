"""The secrets API over HTTP: the wire format, limits, idempotency, and what never leaks."""

from __future__ import annotations

import asyncio
import base64
import os
import sqlite3
import time
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import serve
from tests.secrets.conftest import FAST_ARGON2, OPEN_LIMITS, database_path, service_of
from tests.tcp_proxy import TcpProxy

PLAINTEXT = "correct-horse-battery-staple-4242"


async def create(http: httpx.AsyncClient, **body: object) -> dict[str, Any]:
    response = await http.post("/api/secrets", json={"secret": PLAINTEXT, **body})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def test_create_answers_id_url_expiry_views_and_delete_token(make_secrets_app):
    """201 with the documented fields; the url is the reveal page for the id."""
    async with serve(make_secrets_app(rate_limits=OPEN_LIMITS)) as http:
        created = await create(http, ttl_seconds=3600, max_views=3)
        metadata = (await http.get(f"/api/secrets/{created['id']}")).json()
    assert set(created) == {"id", "url", "expires_at", "views_remaining", "delete_token"}
    assert created["url"] == f"http://localhost/s/{created['id']}"
    assert created["views_remaining"] == 3
    assert metadata == {
        "id": created["id"],
        "exists": True,
        "created_at": metadata["created_at"],
        "expires_at": created["expires_at"],
        "views_remaining": 3,
        "requires_passphrase": False,
        "client_encrypted": False,
    }


async def test_links_use_the_configured_public_url(make_secrets_app):
    """With public_url set, links use it instead of the request's host."""
    app = make_secrets_app(rate_limits=OPEN_LIMITS, secrets={"public_url": "https://secrets.example.com"})
    async with serve(app) as http:
        created = await create(http)
    assert created["url"] == f"https://secrets.example.com/s/{created['id']}"


async def test_reveal_returns_the_secret_once_and_never_caches(make_secrets_app):
    """The first reveal gets the plaintext with no-store; the second the 404."""
    async with serve(make_secrets_app(rate_limits=OPEN_LIMITS)) as http:
        created = await create(http)
        first = await http.post(f"/api/secrets/{created['id']}/reveal", json={})
        second = await http.post(f"/api/secrets/{created['id']}/reveal")
    assert first.status_code == 200
    assert first.json() == {"secret": PLAINTEXT, "views_remaining": 0, "client_encrypted": False}
    assert first.headers["cache-control"] == "no-store"
    assert second.status_code == 404 and second.json()["code"] == "SECRET_NOT_FOUND"


async def test_metadata_gets_never_consume(make_secrets_app):
    """Fifty GETs of the metadata (a scanner, a preview bot) leave the one view for the person."""
    async with serve(make_secrets_app(rate_limits=OPEN_LIMITS)) as http:
        created = await create(http)
        for _ in range(50):
            assert (await http.get(f"/api/secrets/{created['id']}")).json()["views_remaining"] == 1
        assert (await http.post(f"/api/secrets/{created['id']}/reveal")).json()["secret"] == PLAINTEXT


async def test_unknown_expired_and_burned_ids_get_byte_identical_404s(make_secrets_app):
    """Apart from the request id, the 404 bodies and headers cannot tell the cases apart."""
    app = make_secrets_app(rate_limits=OPEN_LIMITS)
    async with serve(app) as http:
        viewed = await create(http)
        await http.post(f"/api/secrets/{viewed['id']}/reveal")
        burned = await create(http)
        await http.delete(f"/api/secrets/{burned['id']}", headers={"X-Delete-Token": burned["delete_token"]})
        expired = await create(http, ttl_seconds=300)
        service_of(app).clock = lambda: time.time() + 301
        answers = []
        for secret_id in (viewed["id"], burned["id"], expired["id"], "AAAAAAAAAAAAAAAAAAAAAA"):
            for method, path in (("GET", ""), ("POST", "/reveal")):
                response = await http.request(method, f"/api/secrets/{secret_id}{path}")
                body = response.json()
                body.pop("request_id")
                answers.append((response.status_code, response.headers["content-type"], tuple(sorted(body.items()))))
    assert len(set(answers)) == 1
    assert answers[0][0] == 404


async def test_a_passphrase_secret_locks_a_client_after_five_wrong_tries(make_secrets_app):
    """403 with attempts_left counting down, then 429 SECRET_LOCKED with Retry-After of 30 minutes."""
    async with serve(make_secrets_app(rate_limits=OPEN_LIMITS)) as http:
        created = await create(http, passphrase="open sesame")
        path = f"/api/secrets/{created['id']}/reveal"
        missing = await http.post(path, json={})
        tries = [await http.post(path, json={"passphrase": "guess"}) for _ in range(5)]
        locked = await http.post(path, json={"passphrase": "open sesame"})
        metadata = await http.get(f"/api/secrets/{created['id']}")
    assert missing.status_code == 403 and missing.json()["code"] == "PASSPHRASE_REQUIRED"
    assert [t.json()["attempts_left"] for t in tries] == [4, 3, 2, 1, 0]
    assert {t.json()["code"] for t in tries} == {"PASSPHRASE_INVALID"}
    assert locked.status_code == 429 and locked.json()["code"] == "SECRET_LOCKED"
    assert 1790 <= int(locked.headers["retry-after"]) <= 1800
    assert metadata.json()["views_remaining"] == 1


async def test_the_delete_token_is_required_to_burn(make_secrets_app):
    """DELETE without or with a wrong token is the plain 404; with the token it is 204 and final."""
    async with serve(make_secrets_app(rate_limits=OPEN_LIMITS)) as http:
        created = await create(http)
        url = f"/api/secrets/{created['id']}"
        without = await http.delete(url)
        wrong = await http.delete(url, headers={"X-Delete-Token": "nope"})
        right = await http.delete(url, headers={"X-Delete-Token": created["delete_token"]})
        after = await http.post(url + "/reveal")
    assert without.status_code == wrong.status_code == 404
    assert right.status_code == 204
    assert after.status_code == 404


async def test_the_audit_trail_is_readable_with_the_delete_token(make_secrets_app):
    """GET /audit with the token lists created and viewed, with the viewer's /24."""
    async with serve(make_secrets_app(rate_limits=OPEN_LIMITS)) as http:
        created = await create(http)
        await http.post(f"/api/secrets/{created['id']}/reveal")
        audit = await http.get(
            f"/api/secrets/{created['id']}/audit", headers={"X-Delete-Token": created["delete_token"]}
        )
        anonymous = await http.get(f"/api/secrets/{created['id']}/audit")
    assert audit.status_code == 200
    assert audit.json()["state"] == "viewed"
    assert [(e["event"], e["client"]) for e in audit.json()["events"]] == [
        ("created", "198.51.100.0/24"),
        ("viewed", "198.51.100.0/24"),
    ]
    assert anonymous.status_code == 404


async def test_signed_in_users_list_and_burn_their_secrets(make_secrets_app):
    """GET /api/secrets lists the user's live secrets; the owner burns without a token; anonymous is 401."""
    alice = {"Authorization": "Bearer user-alice"}
    async with serve(make_secrets_app(rate_limits=OPEN_LIMITS)) as http:
        mine = (await http.post("/api/secrets", json={"secret": "a"}, headers=alice)).json()
        await create(http)
        listed = await http.get("/api/secrets", headers=alice)
        anonymous = await http.get("/api/secrets")
        bob_burns = await http.delete(f"/api/secrets/{mine['id']}", headers={"Authorization": "Bearer user-bob"})
        burned = await http.delete(f"/api/secrets/{mine['id']}", headers=alice)
        after = await http.get("/api/secrets", headers=alice)
    assert [s["id"] for s in listed.json()] == [mine["id"]]
    assert "secret" not in listed.json()[0]
    assert anonymous.status_code == 401
    assert bob_burns.status_code == 404 and burned.status_code == 204
    assert after.json() == []


async def test_idempotency_key_on_create_returns_the_first_secret(make_secrets_app):
    """A retried create with the same Idempotency-Key replays the first answer and stores one secret."""
    alice = {"Authorization": "Bearer user-alice"}
    async with serve(make_secrets_app(rate_limits=OPEN_LIMITS)) as http:
        body = {"secret": "once", "max_views": 2}
        first = await http.post("/api/secrets", json=body, headers={**alice, "Idempotency-Key": "create-1"})
        again = await http.post("/api/secrets", json=body, headers={**alice, "Idempotency-Key": "create-1"})
        other = await http.post(
            "/api/secrets", json={"secret": "twice"}, headers={**alice, "Idempotency-Key": "create-1"}
        )
        listed = (await http.get("/api/secrets", headers=alice)).json()
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert other.status_code == 422 and other.json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert [s["id"] for s in listed] == [first.json()["id"]]


async def test_invalid_creates_are_422_naming_the_field(make_secrets_app):
    """A TTL outside 5 minutes to 7 days (anonymous) is a 422 VALIDATION_FAILED naming ttl_seconds."""
    async with serve(make_secrets_app(rate_limits=OPEN_LIMITS)) as http:
        short = await http.post("/api/secrets", json={"secret": "s", "ttl_seconds": 60})
        unknown = await http.post("/api/secrets", json={"secret": "s", "colour": "red"})
    assert short.status_code == 422 and short.json()["code"] == "VALIDATION_FAILED"
    assert short.json()["errors"] == [{"field": "ttl_seconds", "message": "must be 300 to 604800 seconds"}]
    assert unknown.status_code == 422


async def test_a_body_over_the_create_limit_is_413_before_it_is_read(make_secrets_app):
    """The create route's body limit (2 x max_secret_bytes + 8 KiB) is enforced at the edge."""
    async with serve(make_secrets_app(rate_limits=OPEN_LIMITS, secrets={"max_secret_bytes": 1000})) as http:
        fits = await http.post("/api/secrets", json={"secret": "x" * 1000})
        over = await http.post("/api/secrets", json={"secret": "x" * (2 * 1000 + 8192)})
    assert fits.status_code == 201
    assert over.status_code == 413


async def test_create_and_read_have_separate_rate_limits(make_secrets_app):
    """Exhausting secrets_create leaves reads alone, and reads have their own tier."""
    limits = {"secrets_create": "2/minute", "secrets_read": "3/minute", "general": "100/minute"}
    async with serve(make_secrets_app(rate_limits=limits)) as http:
        created = [await http.post("/api/secrets", json={"secret": "s"}) for _ in range(3)]
        reads = [await http.get(f"/api/secrets/{created[0].json()['id']}") for _ in range(4)]
    assert [r.status_code for r in created] == [201, 201, 429]
    assert created[2].headers["ratelimit-policy"] == '"secrets_create";q=2;w=60'
    assert [r.status_code for r in reads] == [200, 200, 200, 429]
    assert reads[3].json()["tier"] == "secrets_read"


async def test_a_client_hammering_reveals_is_banned(make_secrets_app):
    """Five times the read limit in a window bans the client (the shared 5x rule)."""
    async with serve(make_secrets_app(rate_limits={**OPEN_LIMITS, "secrets_read": "2/minute"})) as http:
        statuses = [(await http.post("/api/secrets/AAAAAAAAAAAAAAAAAAAAAA/reveal")).status_code for _ in range(12)]
        banned = await http.post("/api/secrets/AAAAAAAAAAAAAAAAAAAAAA/reveal")
    assert statuses[:2] == [404, 404] and set(statuses[2:9]) == {429}
    assert banned.status_code == 429 and banned.json()["code"] == "CLIENT_BANNED"


async def test_the_anonymous_live_cap_answers_429(make_secrets_app):
    """Past max_live_per_client, an anonymous create is 429 LIVE_SECRETS_LIMIT."""
    async with serve(make_secrets_app(rate_limits=OPEN_LIMITS, secrets={"max_live_per_client": 2})) as http:
        statuses = [(await http.post("/api/secrets", json={"secret": "s"})) for _ in range(3)]
    assert [s.status_code for s in statuses] == [201, 201, 429]
    assert statuses[2].json()["code"] == "LIVE_SECRETS_LIMIT"


async def test_a_full_store_answers_503_with_retry_after(make_secrets_app):
    """Past max_total_bytes, creates are 503 SECRETS_STORAGE_FULL with Retry-After."""
    async with serve(make_secrets_app(rate_limits=OPEN_LIMITS, secrets={"max_total_bytes": 200})) as http:
        first = await http.post("/api/secrets", json={"secret": "x" * 100})
        second = await http.post("/api/secrets", json={"secret": "x" * 100})
    assert first.status_code == 201
    assert second.status_code == 503 and second.json()["code"] == "SECRETS_STORAGE_FULL"
    assert second.headers["retry-after"] == "60"


async def test_anonymous_creation_can_be_turned_off(make_secrets_app):
    """With allow_anonymous=false only signed-in callers create."""
    async with serve(make_secrets_app(rate_limits=OPEN_LIMITS, secrets={"allow_anonymous": False})) as http:
        anonymous = await http.post("/api/secrets", json={"secret": "s"})
        signed_in = await http.post(
            "/api/secrets", json={"secret": "s"}, headers={"Authorization": "Bearer user-alice"}
        )
    assert anonymous.status_code == 403 and anonymous.json()["code"] == "SIGN_IN_REQUIRED"
    assert signed_in.status_code == 201


async def test_a_browser_encrypted_secret_comes_back_as_sent(make_secrets_app):
    """Client ciphertext is stored opaquely and returned byte-identical, flagged client_encrypted."""
    ciphertext = base64.urlsafe_b64encode(os.urandom(12 + 40 + 16)).rstrip(b"=").decode()
    async with serve(make_secrets_app(rate_limits=OPEN_LIMITS)) as http:
        created = await create(http, secret=ciphertext, client_encrypted=True)
        metadata = (await http.get(f"/api/secrets/{created['id']}")).json()
        revealed = (await http.post(f"/api/secrets/{created['id']}/reveal")).json()
    assert metadata["client_encrypted"] is True
    assert revealed == {"secret": ciphertext, "views_remaining": 0, "client_encrypted": True}


async def test_no_plaintext_reaches_the_sqlite_file_or_the_logs(make_settings, make_secrets_app, logs):
    """The database file holds only ciphertext, and no log line holds the secret, passphrase or tokens."""
    settings = make_settings(
        rate_limits=OPEN_LIMITS, secrets={"argon2_time_cost": 1, "argon2_memory_kib": 8}, log_level="debug"
    )
    async with serve(make_secrets_app(settings)) as http:
        created = await create(http, passphrase="my-passphrase-xyz", max_views=2)
        await http.post(f"/api/secrets/{created['id']}/reveal", json={"passphrase": "wrong-passphrase-abc"})
        await http.post(f"/api/secrets/{created['id']}/reveal", json={"passphrase": "my-passphrase-xyz"})
    with sqlite3.connect(database_path(settings)) as conn:
        conn.execute("PRAGMA wal_checkpoint(FULL)")
        rows = conn.execute("SELECT * FROM secrets_secret").fetchall()
    raw = database_path(settings).read_bytes()
    assert len(rows) == 1
    for needle in (PLAINTEXT, "my-passphrase-xyz", created["delete_token"]):
        assert needle.encode() not in raw
        assert all(needle.encode() not in repr(row).encode() for row in rows)
    text = str(logs())
    assert logs() and "/api/secrets/{secret_id}/reveal" in text
    for needle in (PLAINTEXT, "my-passphrase-xyz", "wrong-passphrase-abc", created["delete_token"], created["id"]):
        assert needle not in text


async def test_no_plaintext_reaches_the_backend(backend_kind, app_settings, make_secrets_app):
    """Reading the table (or every Redis key) finds the ciphertext but never the plaintext."""
    settings = app_settings()
    app = make_secrets_app(settings)
    async with serve(app) as http:
        created = await create(http, max_views=2, passphrase="pass-phrase-123")
        dump = await _dump_backend(app, backend_kind)
    assert created["id"].encode() in dump  # the dump really covers the stored secret
    for needle in (PLAINTEXT, "pass-phrase-123", created["delete_token"]):
        assert needle.encode() not in dump


async def _dump_backend(app, backend_kind: str) -> bytes:
    platform = app.platform
    if backend_kind == "redis":
        chunks = []
        async for key in platform.redis.scan_iter(match=app.settings.redis_prefix + "*"):
            kind = (await platform.redis.type(key)).decode()
            value = {
                "hash": platform.redis.hgetall,
                "string": platform.redis.get,
                "list": lambda k: platform.redis.lrange(k, 0, -1),
                "zset": lambda k: platform.redis.zrange(k, 0, -1),
            }[kind](key)
            chunks.append(key + repr(await value).encode())
        return b"\n".join(chunks)
    from sqlalchemy import text

    async with platform.db.engine.connect() as conn:
        rows = (await conn.execute(text("SELECT * FROM secrets_secret"))).all()
        events = (await conn.execute(text("SELECT * FROM secrets_event"))).all()
    return repr(rows).encode() + repr(events).encode()


async def test_200_concurrent_reveals_across_two_instances_succeed_once(backend_kind, app_settings, make_secrets_app):
    """Two app instances on one backend: of 200 concurrent reveals of a 1-view secret exactly one wins."""
    settings = app_settings()
    first, second = make_secrets_app(settings), make_secrets_app(settings)
    async with serve(first) as one, serve(second) as two:
        created = await create(one)
        clients = [one, two] * 100
        responses = await asyncio.gather(*[c.post(f"/api/secrets/{created['id']}/reveal") for c in clients])
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [404] * 199
    assert next(r for r in responses if r.status_code == 200).json()["secret"] == PLAINTEXT


async def test_n_views_across_two_instances_give_exactly_n(backend_kind, app_settings, make_secrets_app):
    """A 3-view secret read by 60 concurrent requests over two instances serves exactly 3."""
    settings = app_settings()
    first, second = make_secrets_app(settings), make_secrets_app(settings)
    async with serve(first) as one, serve(second) as two:
        created = await create(one, max_views=3)
        responses = await asyncio.gather(*[c.post(f"/api/secrets/{created['id']}/reveal") for c in [one, two] * 30])
    assert sum(1 for r in responses if r.status_code == 200) == 3


@pytest.mark.postgres
async def test_postgres_going_away_answers_503_to_create_and_reveal_and_loses_nothing(
    make_secrets_app, make_settings, postgres_url
):
    """With PostgreSQL cut mid-run, create and reveal (both on the raw asyncpg path) answer 503
    DATABASE_UNAVAILABLE with Retry-After, not 500; once it is back, the secret created before is still
    there with its view, and creates work again."""
    target = urlsplit(postgres_url.replace("+asyncpg", ""))
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 5432)
    await proxy.start()
    url = postgres_url.replace(f"{target.hostname}:{target.port or 5432}", f"127.0.0.1:{proxy.port}")
    app = make_secrets_app(
        make_settings(
            database_url=url, auto_migrate=True, db_timeout_seconds=1.0, rate_limits=OPEN_LIMITS, secrets=FAST_ARGON2
        )
    )
    try:
        async with serve(app) as http:
            kept = await create(http)
            await proxy.stop()
            create_down = await http.post("/api/secrets", json={"secret": PLAINTEXT})
            reveal_down = await http.post(f"/api/secrets/{kept['id']}/reveal", json={})
            await proxy.start()
            revealed = await http.post(f"/api/secrets/{kept['id']}/reveal", json={})
            created_again = await http.post("/api/secrets", json={"secret": PLAINTEXT})
    finally:
        await proxy.stop()
    for down in (create_down, reveal_down):
        assert down.status_code == 503, down.text
        assert down.json()["code"] == "DATABASE_UNAVAILABLE"
        assert int(down.headers["retry-after"]) >= 1
    assert revealed.status_code == 200 and revealed.json()["secret"] == PLAINTEXT
    assert created_again.status_code == 201


async def test_a_secret_whose_key_is_gone_answers_a_named_503(make_settings):
    """Sealed under k1, revealed by a server that has only k2: 503 SECRET_KEY_UNAVAILABLE, not a 500."""
    from bastion.app import create_app
    from bastion.core.crypto import new_key
    from tests.secrets.conftest import FAST_ARGON2, principal_module

    def app(keys: dict[str, str], active: str) -> Any:
        settings = make_settings(
            rate_limits=OPEN_LIMITS, secrets=FAST_ARGON2, crypto={"keys": keys, "active_key_id": active}
        )
        return create_app(settings, extra_modules=(principal_module,))

    async with serve(app({"k1": new_key()}, "k1")) as http:
        created = await create(http)
    async with serve(app({"k2": new_key()}, "k2")) as http:
        answer = await http.post(f"/api/secrets/{created['id']}/reveal", json={})
    assert answer.status_code == 503, answer.text
    assert answer.json()["code"] == "SECRET_KEY_UNAVAILABLE"
    assert "BASTION_CRYPTO__KEYS" in answer.json()["detail"]
