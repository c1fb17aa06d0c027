"""Sessions: register, sign in, refresh with rotation, sign out; cookie mode and CSRF. On SQLite and on
the real PostgreSQL."""

from __future__ import annotations

import pytest

from tests.conftest import serve
from tests.identity.conftest import PASSWORD, SQLITE_ONLY, bearer, client_for, register


async def test_register_then_the_access_token_authenticates(identity_app):
    """Registration answers 201 with a bearer access token that identifies the new user."""
    async with serve(identity_app()) as http:
        session = await register(http, email="Ada@Example.COM ")
        me = await http.get("/t/id/whoami", headers=bearer(session["access_token"]))
    assert session["token_type"] == "Bearer" and session["refresh_token"].startswith("bsr_")
    assert session["user"]["email"] == "ada@example.com"  # normalised
    assert me.status_code == 200
    body = me.json()
    assert body["kind"] == "user" and body["id"] == session["user"]["id"]
    assert body["roles"] == ["user"] and body["scopes"] == ["*"]
    assert body["attrs"]["plan"] == "free" and body["attrs"]["login"] == "ada"


@SQLITE_ONLY
async def test_registering_an_existing_email_is_409(identity_app):
    """A second account for the same (normalised) email is refused with EMAIL_TAKEN."""
    async with serve(identity_app()) as http:
        await register(http)
        again = await http.post("/auth/register", json={"email": "ADA@example.com", "password": PASSWORD})
    assert again.status_code == 409 and again.json()["code"] == "EMAIL_TAKEN"


@SQLITE_ONLY
async def test_weak_password_is_refused(identity_app):
    """A password below the minimum length is a 422 naming the field."""
    async with serve(identity_app()) as http:
        response = await http.post("/auth/register", json={"email": "ada@example.com", "password": "short"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "password"


async def test_login_issues_a_working_session(identity_app):
    """A password sign-in returns an access token that authenticates and a refresh token."""
    async with serve(identity_app()) as http:
        await register(http)
        response = await http.post("/auth/login", json={"email": "ada@example.com", "password": PASSWORD})
        me = await http.get("/t/id/whoami", headers=bearer(response.json()["access_token"]))
    assert response.status_code == 200
    assert me.status_code == 200 and me.json()["attrs"]["email"] == "ada@example.com"


async def test_refresh_rotates_the_refresh_token(identity_app):
    """A refresh returns a new refresh token and a new working access token."""
    async with serve(identity_app()) as http:
        first = await register(http)
        second = (await http.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})).json()
        me = await http.get("/t/id/whoami", headers=bearer(second["access_token"]))
    assert second["refresh_token"] != first["refresh_token"]
    assert me.status_code == 200


async def test_reusing_a_spent_refresh_token_revokes_the_family(identity_app):
    """Presenting a rotated-out refresh token again ends the whole session: its newest tokens stop working."""
    async with serve(identity_app()) as http:
        first = await register(http)
        second = (await http.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})).json()
        assert (await http.get("/t/id/whoami", headers=bearer(second["access_token"]))).status_code == 200
        replay = await http.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
        newest_refresh = await http.post("/auth/refresh", json={"refresh_token": second["refresh_token"]})
        newest_access = await http.get("/t/id/whoami", headers=bearer(second["access_token"]))
    assert replay.status_code == 401 and replay.json()["code"] == "REFRESH_TOKEN_INVALID"
    assert newest_refresh.status_code == 401
    assert newest_access.status_code == 401 and newest_access.json()["code"] == "INVALID_TOKEN"


@SQLITE_ONLY
async def test_unknown_refresh_token_is_401(identity_app):
    """A refresh token that was never issued is refused."""
    async with serve(identity_app()) as http:
        response = await http.post("/auth/refresh", json={"refresh_token": "bsr_" + "x" * 43})
    assert response.status_code == 401 and response.json()["code"] == "REFRESH_TOKEN_INVALID"


async def test_logout_ends_the_session_at_once(identity_app):
    """After logout the (already cached) access token and the refresh token are refused immediately."""
    async with serve(identity_app()) as http:
        session = await register(http)
        assert (await http.get("/t/id/whoami", headers=bearer(session["access_token"]))).status_code == 200
        out = await http.post("/auth/logout", json={"refresh_token": session["refresh_token"]})
        access = await http.get("/t/id/whoami", headers=bearer(session["access_token"]))
        refresh = await http.post("/auth/refresh", json={"refresh_token": session["refresh_token"]})
    assert out.status_code == 204
    assert access.status_code == 401 and "invalid_token" in access.headers["www-authenticate"]
    assert refresh.status_code == 401


@SQLITE_ONLY
async def test_logout_with_only_the_access_token(identity_app):
    """A bearer access token alone is enough to end its session."""
    async with serve(identity_app()) as http:
        session = await register(http)
        out = await http.post("/auth/logout", headers=bearer(session["access_token"]))
        refresh = await http.post("/auth/refresh", json={"refresh_token": session["refresh_token"]})
    assert out.status_code == 204 and refresh.status_code == 401


@SQLITE_ONLY
async def test_status_reports_the_signed_in_user(identity_app):
    """GET /auth/status answers authenticated=false anonymously, and the profile when signed in."""
    async with serve(identity_app()) as http:
        anonymous = (await http.get("/auth/status")).json()
        session = await register(http)
        signed_in = (await http.get("/auth/status", headers=bearer(session["access_token"]))).json()
    assert anonymous == {"authenticated": False, "kind": None, "user": None, "scopes": [], "csrf_token": None}
    assert signed_in["authenticated"] and signed_in["user"]["email"] == "ada@example.com"
    assert signed_in["csrf_token"] is None  # bearer sessions need no CSRF token


@SQLITE_ONLY
async def test_changing_the_password_ends_every_session(identity_app):
    """POST /auth/password needs the current password, then old sessions and the old password stop working."""
    async with serve(identity_app()) as http:
        session = await register(http)
        wrong = await http.post(
            "/auth/password",
            headers=bearer(session["access_token"]),
            json={"current_password": "not it", "new_password": "a brand new passphrase"},
        )
        done = await http.post(
            "/auth/password",
            headers=bearer(session["access_token"]),
            json={"current_password": PASSWORD, "new_password": "a brand new passphrase"},
        )
        old_access = await http.get("/t/id/whoami", headers=bearer(session["access_token"]))
        old_password = await http.post("/auth/login", json={"email": "ada@example.com", "password": PASSWORD})
        new_password = await http.post(
            "/auth/login", json={"email": "ada@example.com", "password": "a brand new passphrase"}
        )
    assert wrong.status_code == 401 and done.status_code == 204
    assert old_access.status_code == 401
    assert old_password.status_code == 401 and new_password.status_code == 200


# -- cookie mode ------------------------------------------------------------------------------------------


@SQLITE_ONLY
async def test_cookie_mode_sets_hardened_cookies(identity_app):
    """Cookie sign-in sets httpOnly SameSite=Lax session cookies (refresh on /auth only), a readable CSRF
    cookie, and puts no token in the body."""
    async with serve(identity_app()) as http:
        await register(http)
        response = await http.post(
            "/auth/login", json={"email": "ada@example.com", "password": PASSWORD, "mode": "cookie"}
        )
    cookies = {c.split("=", 1)[0]: c.lower() for c in response.headers.get_list("set-cookie")}
    assert "httponly" in cookies["bastion_access"] and "samesite=lax" in cookies["bastion_access"]
    assert "path=/auth" in cookies["bastion_refresh"] and "httponly" in cookies["bastion_refresh"]
    assert "httponly" not in cookies["bastion_csrf"]
    assert all("secure" not in c for c in cookies.values())  # development: plain-HTTP localhost
    body = response.json()
    assert "access_token" not in body and "refresh_token" not in body and body["csrf_token"]


@SQLITE_ONLY
async def test_cookies_are_secure_in_production(identity_app):
    """In production every session cookie is Secure."""
    app = identity_app(
        env="production",
        crypto={"keys": {"k": "A" * 43 + "="}, "active_key_id": "k"},
        cron_secret="kY3v9QmTz2LwX8pR4nB7cD1fH6jG5sAe",
        allowed_hosts=["api.example.com", "localhost"],
    )
    async with serve(app) as http:
        await register(http)
        response = await http.post(
            "/auth/login", json={"email": "ada@example.com", "password": PASSWORD, "mode": "cookie"}
        )
    cookies = response.headers.get_list("set-cookie")
    assert len(cookies) == 3 and all("secure" in c.lower() for c in cookies)


@pytest.fixture
async def cookie_session(identity_app):
    """A running app and a browser-like client signed in with cookies; yields (client, csrf token)."""
    async with serve(identity_app()) as http:
        await register(http)
        response = await http.post(
            "/auth/login", json={"email": "ada@example.com", "password": PASSWORD, "mode": "cookie"}
        )
        yield http, response.json()["csrf_token"]


async def test_cookie_session_reads_without_csrf(cookie_session):
    """A safe request authenticated by the cookie needs no CSRF token."""
    http, _ = cookie_session
    response = await http.get("/t/id/whoami")
    assert response.status_code == 200 and response.json()["attrs"]["auth"] == "cookie"


async def test_cookie_post_without_csrf_is_403(cookie_session):
    """An unsafe request authenticated only by the cookie and without the CSRF header is 403 CSRF_FAILED."""
    http, _ = cookie_session
    response = await http.post("/t/id/whoami")
    assert response.status_code == 403 and response.json()["code"] == "CSRF_FAILED"


@SQLITE_ONLY
async def test_cookie_post_with_a_wrong_csrf_token_is_403(cookie_session):
    """A CSRF header that is not the session's token is refused."""
    http, csrf = cookie_session
    forged = csrf.split(".")[0] + ".AAAA"
    response = await http.post("/t/id/whoami", headers={"X-CSRF-Token": forged})
    assert response.status_code == 403 and response.json()["code"] == "CSRF_FAILED"


async def test_cookie_post_with_the_csrf_token_passes(cookie_session):
    """With the CSRF header matching the cookie and the session, the cookie-authenticated POST is served."""
    http, csrf = cookie_session
    response = await http.post("/t/id/whoami", headers={"X-CSRF-Token": csrf})
    assert response.status_code == 200 and response.json()["kind"] == "user"


@SQLITE_ONLY
async def test_cookie_post_from_another_origin_is_403(cookie_session):
    """A cross-site Origin is refused even with the right token (a belt to the token's braces)."""
    http, csrf = cookie_session
    response = await http.post("/t/id/whoami", headers={"X-CSRF-Token": csrf, "Origin": "https://evil.example"})
    same_site = await http.post("/t/id/whoami", headers={"X-CSRF-Token": csrf, "Origin": "http://localhost"})
    assert response.status_code == 403 and response.json()["code"] == "CSRF_FAILED"
    assert same_site.status_code == 200


@SQLITE_ONLY
async def test_a_csrf_token_of_another_session_is_refused(identity_app):
    """A token minted for one session (planted with its cookie) does not pass for another session."""
    app = identity_app()
    async with serve(app) as http:
        await register(http)
        await register(http, email="mallory@example.com")
        async with client_for(app) as victim, client_for(app) as attacker:
            await victim.post("/auth/login", json={"email": "ada@example.com", "password": PASSWORD, "mode": "cookie"})
            theirs = (
                await attacker.post(
                    "/auth/login", json={"email": "mallory@example.com", "password": PASSWORD, "mode": "cookie"}
                )
            ).json()["csrf_token"]
            victim.cookies.set("bastion_csrf", theirs, domain="localhost")
            response = await victim.post("/t/id/whoami", headers={"X-CSRF-Token": theirs})
    assert response.status_code == 403 and response.json()["code"] == "CSRF_FAILED"


async def test_cookie_refresh_needs_csrf_and_rotates(cookie_session):
    """POST /auth/refresh on the refresh cookie: 403 without the CSRF header, new cookies with it."""
    http, csrf = cookie_session
    refused = await http.post("/auth/refresh")
    rotated = await http.post("/auth/refresh", headers={"X-CSRF-Token": csrf})
    names = {c.split("=", 1)[0] for c in rotated.headers.get_list("set-cookie")}
    assert refused.status_code == 403 and refused.json()["code"] == "CSRF_FAILED"
    assert rotated.status_code == 200 and names == {"bastion_access", "bastion_refresh", "bastion_csrf"}


@SQLITE_ONLY
async def test_cookie_logout_clears_the_cookies(cookie_session):
    """POST /auth/logout in cookie mode ends the session and expires the cookies."""
    http, csrf = cookie_session
    out = await http.post("/auth/logout", headers={"X-CSRF-Token": csrf})
    after = await http.get("/t/id/whoami")
    assert out.status_code == 204
    assert all("max-age=0" in c.lower() for c in out.headers.get_list("set-cookie"))
    assert after.status_code == 401


@SQLITE_ONLY
async def test_status_gives_a_cookie_session_its_csrf_token(cookie_session):
    """/auth/status hands a cookie session the CSRF token it must echo (the current cookie's)."""
    http, csrf = cookie_session
    status = (await http.get("/auth/status")).json()
    assert status["authenticated"] and status["csrf_token"] == csrf


@SQLITE_ONLY
async def test_a_proxys_basic_auth_does_not_hide_the_cookie_session(cookie_session):
    """An Authorization header of another scheme (a staging proxy's Basic auth) leaves the cookie in charge."""
    http, _ = cookie_session
    response = await http.get("/t/id/whoami", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert response.status_code == 200 and response.json()["attrs"]["auth"] == "cookie"


async def test_ended_sessions_are_purged_with_their_tokens(identity_app):
    """purge_expired deletes sessions long expired or revoked, with their refresh tokens, and keeps live ones."""
    import datetime as dt

    from sqlalchemy import text, update

    from bastion.identity.models import AuthSession
    from tests.identity.conftest import service_of

    app = identity_app()
    async with serve(app) as http:
        old = await register(http)
        live = await register(http, email="eve@example.com")
        await http.post("/auth/refresh", json={"refresh_token": old["refresh_token"]})
        async with app.platform.db.session() as db, db.begin():
            await db.execute(
                update(AuthSession)
                .where(AuthSession.user_id == old["user"]["id"])
                .values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=2))
            )
        purged = await service_of(app).purge_expired()
        async with app.platform.db.session() as db:
            sessions = await db.scalar(text("SELECT count(*) FROM identity_sessions"))
            tokens = await db.scalar(text("SELECT count(*) FROM identity_refresh_tokens"))
        still = await http.post("/auth/refresh", json={"refresh_token": live["refresh_token"]})
    assert purged == 1 and sessions == 1 and tokens == 1  # only eve's; ada's two went with her session
    assert still.status_code == 200
