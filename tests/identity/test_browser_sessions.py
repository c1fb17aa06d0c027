"""Cookie sessions as a browser app uses them: same-origin writes without a CSRF header when the browser
proves the origin, cross-site writes refused, and sliding sessions (an expired access cookie renewed at the
edge while the session lives; idle, revoked and absolute ends respected)."""

from __future__ import annotations

import datetime as dt
import time

import jwt
from sqlalchemy import update

from bastion.identity.models import AuthSession
from tests.conftest import serve
from tests.identity.conftest import PASSWORD, SQLITE_ONLY, register, service_of

SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin", "Origin": "http://localhost"}


async def _signed_in(http):
    await register(http)
    response = await http.post("/auth/login", json={"email": "ada@example.com", "password": PASSWORD, "mode": "cookie"})
    assert response.status_code == 200
    return response


@SQLITE_ONLY
async def test_same_origin_post_needs_no_csrf_header(identity_app):
    """Sec-Fetch-Site: same-origin, or an Origin of this host, passes without X-CSRF-Token."""
    async with serve(identity_app()) as http:
        await _signed_in(http)
        both = await http.post("/t/id/whoami", headers=SAME_ORIGIN)
        fetch_site = await http.post("/t/id/whoami", headers={"Sec-Fetch-Site": "same-origin"})
        origin = await http.post("/t/id/whoami", headers={"Origin": "http://localhost"})
    assert [both.status_code, fetch_site.status_code, origin.status_code] == [200, 200, 200]
    assert both.json()["attrs"]["auth"] == "cookie"


@SQLITE_ONLY
async def test_cross_site_post_with_the_cookie_is_refused(identity_app):
    """A cross-site POST carrying the session cookie is 403 CSRF_FAILED, however it presents itself."""
    async with serve(identity_app()) as http:
        await _signed_in(http)
        cross = await http.post(
            "/t/id/whoami", headers={"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}
        )
        same_site = await http.post("/t/id/whoami", headers={"Sec-Fetch-Site": "same-site"})
        lying_origin = await http.post(
            "/t/id/whoami", headers={"Sec-Fetch-Site": "cross-site", "Origin": "http://localhost"}
        )
        no_proof = await http.post("/t/id/whoami")
    for response in (cross, same_site, lying_origin, no_proof):
        assert response.status_code == 403 and response.json()["code"] == "CSRF_FAILED"


@SQLITE_ONLY
async def test_the_access_cookie_outlives_its_token(identity_app):
    """With sliding sessions the access cookie lives as long as the session (the edge renews its token)."""
    async with serve(identity_app()) as http:
        response = await _signed_in(http)
    access = next(c for c in response.headers.get_list("set-cookie") if c.startswith("bastion_access="))
    max_age = int(access.lower().split("max-age=")[1].split(";")[0])
    assert max_age > 30 * 86400 - 60


def _set_access(http, token: str) -> None:
    """Put ``token`` in the client's access cookie (the one the server set, whatever domain it is kept under)."""
    for cookie in http.cookies.jar:
        if cookie.name == "bastion_access":
            cookie.value = token


def _expire(http, app) -> str:
    """Replace the client's access cookie with an expired token of the same session; the session id."""
    signer = service_of(app).signer
    current = next(c.value for c in http.cookies.jar if c.name == "bastion_access")
    claims = signer.verify(current or "", allow_expired=True)
    old, _ = signer.issue(user_id=claims["sub"], session_id=claims["sid"], ttl=60, now=time.time() - 3600)
    _set_access(http, old)
    return str(claims["sid"])


async def test_an_expired_access_cookie_is_renewed_at_the_edge(identity_app):
    """An expired access token of a live session: the request is served as the user and a fresh cookie set."""
    app = identity_app()
    async with serve(app) as http:
        await _signed_in(http)
        _expire(http, app)
        read = await http.get("/t/id/whoami")
        write = await http.post("/t/id/whoami", headers=SAME_ORIGIN)
    assert read.status_code == 200 and read.json()["attrs"]["auth"] == "cookie"
    renewed = [c for c in read.headers.get_list("set-cookie") if c.startswith("bastion_access=")]
    assert len(renewed) == 1
    fresh = renewed[0].split(";")[0].split("=", 1)[1]
    assert service_of(app).signer.verify(fresh)["exp"] > time.time() + 30
    assert write.status_code == 200  # the browser now holds the fresh cookie


@SQLITE_ONLY
async def test_a_revoked_or_idle_session_is_not_renewed(identity_app):
    """Signed out (revoked), idle past session_idle_seconds, or past its absolute end: not renewed, 401."""
    app = identity_app(identity={"session_idle_seconds": 600})
    async with serve(app) as http:
        await _signed_in(http)
        parts = service_of(app)
        session_id = _expire(http, app)
        long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=601)
        async with app.platform.db.transaction() as session:
            await session.execute(update(AuthSession).where(AuthSession.id == session_id).values(last_used_at=long_ago))
        idle = await http.get("/t/id/whoami")
        async with app.platform.db.transaction() as session:
            await session.execute(
                update(AuthSession)
                .where(AuthSession.id == session_id)
                .values(last_used_at=dt.datetime.now(dt.UTC), expires_at=dt.datetime.now(dt.UTC))
            )
        parts_renewer_forgets = _expire(http, app)  # a new expired token: not answered from the renewer's memory
        ended = await http.get("/t/id/whoami")
        async with app.platform.db.transaction() as session:
            await session.execute(
                update(AuthSession)
                .where(AuthSession.id == session_id)
                .values(expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(days=1))
            )
        await parts.sessions.revoke_session(session_id, reason="logout")
        _expire(http, app)
        revoked = await http.get("/t/id/whoami")
    assert parts_renewer_forgets == session_id
    for response in (idle, ended, revoked):
        assert response.status_code == 401
        assert not [c for c in response.headers.get_list("set-cookie") if c.startswith("bastion_access=")]


@SQLITE_ONLY
async def test_a_forged_expired_token_is_not_renewed(identity_app):
    """An expired token signed with another key is not ours: no renewal, 401."""
    app = identity_app()
    async with serve(app) as http:
        await _signed_in(http)
        claims = service_of(app).signer.verify(http.cookies["bastion_access"])
        forged = jwt.encode(
            {**claims, "exp": int(time.time()) - 10}, b"k" * 32, algorithm="HS256", headers={"typ": "at+jwt"}
        )
        _set_access(http, forged)
        response = await http.get("/t/id/whoami")
    assert response.status_code == 401
