"""OAuth sign-in (authorization code + PKCE + state) against a local fake provider, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import os
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import text

from bastion.core.crypto import DecryptionError, Keyring
from bastion.identity import service as identity_service
from tests.conftest import serve
from tests.identity.conftest import PASSWORD, SQLITE_ONLY, bearer, identity_of, register
from tests.identity.fake_provider import FakeProvider


@pytest.fixture
async def provider():
    fake = FakeProvider()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


@pytest.fixture
def oauth_app(identity_app, provider):
    def build(identity: dict | None = None, **overrides):
        config = {"oauth_providers": {"fake": provider.settings()}, "oauth_timeout_seconds": 2.0, **(identity or {})}
        return identity_app(identity=config, **overrides)

    return build


async def start(http: httpx.AsyncClient, path: str = "/auth/login/fake") -> httpx.Response:
    """Begin at Bastion; returns its redirect to the provider."""
    response = await http.get(path)
    assert response.status_code == 302, response.text
    return response


async def authorize(location: str) -> str:
    """The browser at the provider: returns where the provider sends it back."""
    async with httpx.AsyncClient() as browser:
        response = await browser.get(location)
    assert response.status_code == 302, response.text
    return response.headers["location"]


async def sign_in(http: httpx.AsyncClient, path: str = "/auth/login/fake") -> httpx.Response:
    """The whole round trip: Bastion → provider → Bastion's callback; returns the callback's response."""
    back = await authorize((await start(http, path)).headers["location"])
    return await http.get(back)


@SQLITE_ONLY
async def test_redirect_carries_state_and_an_s256_challenge(oauth_app, provider):
    """The login redirect goes to the provider with our client id, a state, and a PKCE S256 challenge."""
    async with serve(oauth_app()) as http:
        response = await start(http)
    query = parse_qs(urlsplit(response.headers["location"]).query)
    assert response.headers["location"].startswith(provider.url + "/authorize")
    assert query["client_id"] == ["bastion-test-client"] and query["response_type"] == ["code"]
    assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) == 43
    assert query["redirect_uri"] == ["http://localhost/auth/callback/fake"]
    state_cookie = next(c for c in response.headers.get_list("set-cookie") if c.startswith("bastion_oauth_state="))
    assert query["state"][0] in state_cookie and "httponly" in state_cookie.lower()


async def test_full_flow_creates_the_account_and_signs_in(oauth_app):
    """A first sign-in creates the account from the provider's profile and sets the session cookies."""
    async with serve(oauth_app()) as http:
        done = await sign_in(http, "/auth/login/fake?next=/dashboard")
        me = await http.get("/t/id/whoami")
    assert done.status_code == 302 and done.headers["location"] == "/dashboard"
    assert me.status_code == 200
    attrs = me.json()["attrs"]
    assert attrs["email"] == "octo@example.com" and attrs["login"] == "octo-cat"
    assert attrs["display_name"] == "Octo Cat" and attrs["avatar_url"] == "https://avatars.example/4242"


async def test_second_sign_in_reuses_the_account(oauth_app):
    """Signing in again with the same provider account lands in the same user."""
    app = oauth_app()
    async with serve(app) as http:
        await sign_in(http)
        first = (await http.get("/t/id/whoami")).json()["id"]
        http.cookies.clear()
        await sign_in(http)
        second = (await http.get("/t/id/whoami")).json()["id"]
        async with app.platform.db.session() as db:
            users = await db.scalar(text("SELECT count(*) FROM identity_users"))
    assert first == second and users == 1


@SQLITE_ONLY
async def test_unsafe_next_is_replaced(oauth_app):
    """An absolute or protocol-relative next URL is not followed (no open redirect)."""
    async with serve(oauth_app()) as http:
        done = await sign_in(http, "/auth/login/fake?next=//evil.example/x")
    assert done.headers["location"] == "/"


async def test_state_mismatch_is_refused(oauth_app):
    """A callback whose state is not the one bound to this browser is 400 OAUTH_STATE_INVALID."""
    async with serve(oauth_app()) as http:
        back = await authorize((await start(http)).headers["location"])
        tampered = back.replace("state=", "state=x")
        response = await http.get(tampered)
    assert response.status_code == 400 and response.json()["code"] == "OAUTH_STATE_INVALID"


@SQLITE_ONLY
async def test_callback_in_another_browser_is_refused(oauth_app):
    """Login CSRF: a callback URL carried to a browser that did not start the flow is refused."""
    app = oauth_app()
    async with serve(app) as http:
        back = await authorize((await start(http)).headers["location"])
        from tests.identity.conftest import client_for

        async with client_for(app, "203.0.113.50") as victim:
            response = await victim.get(back)
    assert response.status_code == 400 and response.json()["code"] == "OAUTH_STATE_INVALID"


@SQLITE_ONLY
async def test_state_is_single_use(oauth_app):
    """Replaying a completed callback is refused."""
    async with serve(oauth_app()) as http:
        back = await authorize((await start(http)).headers["location"])
        first = await http.get(back)
        http.cookies.set(
            "bastion_oauth_state",
            parse_qs(urlsplit(back).query)["state"][0],
            domain="localhost",
            path="/auth/callback/fake",
        )
        replay = await http.get(back)
    assert first.status_code == 302
    assert replay.status_code == 400 and replay.json()["code"] == "OAUTH_STATE_INVALID"


async def test_pkce_mismatch_is_refused(oauth_app, provider):
    """A code issued for another flow's challenge (code injection) fails the provider's PKCE check: 400."""
    async with serve(oauth_app()) as http:
        first = await authorize((await start(http)).headers["location"])
        second = await authorize((await start(http)).headers["location"])  # the browser now holds state 2
        code_1 = parse_qs(urlsplit(first).query)["code"][0]
        state_2 = parse_qs(urlsplit(second).query)["state"][0]
        response = await http.get(f"/auth/callback/fake?code={code_1}&state={state_2}")
    assert response.status_code == 400 and response.json()["code"] == "OAUTH_CODE_REJECTED"
    assert provider.hits["/token"] == 1 and "/user" not in provider.hits


async def test_provider_denial_is_reported(oauth_app, provider):
    """The provider's error=access_denied redirect becomes 400 OAUTH_DENIED naming the reason."""
    provider.deny = True
    async with serve(oauth_app()) as http:
        response = await sign_in(http)
    assert response.status_code == 400 and response.json()["code"] == "OAUTH_DENIED"
    assert response.json()["provider_error"] == "access_denied"


async def test_token_endpoint_error_page_is_502(oauth_app, provider):
    """An HTML 500 page from the token endpoint is 502 OAUTH_PROVIDER_ERROR, with nothing of it shown."""
    provider.behaviour["/token"] = "html500"
    async with serve(oauth_app()) as http:
        response = await sign_in(http)
    assert response.status_code == 502 and response.json()["code"] == "OAUTH_PROVIDER_ERROR"
    assert "<html" not in response.text


@SQLITE_ONLY
async def test_userinfo_error_page_is_502_after_a_retry(oauth_app, provider):
    """A userinfo endpoint that keeps failing is retried, then reported as 502."""
    provider.behaviour["/user"] = "html500"
    async with serve(oauth_app()) as http:
        response = await sign_in(http)
    assert response.status_code == 502 and response.json()["code"] == "OAUTH_PROVIDER_ERROR"
    assert provider.hits["/user"] >= 2


@SQLITE_ONLY
async def test_dropped_connection_is_502(oauth_app, provider):
    """A token endpoint that closes the connection without answering is 502 (never retried: codes are
    single-use)."""
    provider.behaviour["/token"] = "drop"
    async with serve(oauth_app()) as http:
        response = await sign_in(http)
    assert response.status_code == 502 and provider.hits["/token"] == 1


@SQLITE_ONLY
async def test_userinfo_dropped_once_is_retried(oauth_app, provider):
    """A userinfo read whose connection drops before an answer is read again, and the sign-in succeeds."""
    provider.behaviour["/user"] = "drop-once"
    async with serve(oauth_app()) as http:
        response = await sign_in(http)
    assert response.status_code == 302
    assert provider.hits["/user"] == 2 and provider.hits["/token"] == 1


@SQLITE_ONLY
async def test_repeated_provider_failures_pause_sign_in(oauth_app, provider):
    """After five failed exchanges the provider's circuit opens: sign-in answers 502 at once, with Retry-After."""
    provider.behaviour["/token"] = "html500"
    async with serve(oauth_app(rate_limits={"auth": "1000/minute"})) as http:
        for _ in range(5):
            assert (await sign_in(http)).status_code == 502
        response = await sign_in(http)
    assert response.status_code == 502 and response.json()["code"] == "OAUTH_PROVIDER_ERROR"
    assert "paused" in response.json()["detail"] and int(response.headers["retry-after"]) > 0
    assert provider.hits["/token"] == 5


@SQLITE_ONLY
async def test_silent_provider_is_504(oauth_app, provider):
    """A token endpoint that never answers is cut at the configured timeout: 504 OAUTH_PROVIDER_TIMEOUT."""
    provider.behaviour["/token"] = "hang"
    async with serve(oauth_app(identity={"oauth_timeout_seconds": 0.3})) as http:
        response = await sign_in(http)
    assert response.status_code == 504 and response.json()["code"] == "OAUTH_PROVIDER_TIMEOUT"


@SQLITE_ONLY
async def test_unknown_provider_is_404(oauth_app):
    """A provider that is not configured is 404."""
    async with serve(oauth_app()) as http:
        response = await http.get("/auth/login/nope")
    assert response.status_code == 404 and response.json()["code"] == "OAUTH_PROVIDER_NOT_FOUND"


@SQLITE_ONLY
async def test_existing_password_account_is_not_captured(oauth_app):
    """A password account with the provider's address (unverified here) is not linked silently: 409."""
    async with serve(oauth_app()) as http:
        await register(http, email="octo@example.com")
        http.cookies.clear()
        response = await sign_in(http)
    assert response.status_code == 409 and response.json()["code"] == "EMAIL_TAKEN"


@SQLITE_ONLY
async def test_signed_in_user_links_a_provider(oauth_app):
    """Starting the flow while signed in links the provider account to that user."""
    async with serve(oauth_app()) as http:
        await register(http, email="octo@example.com")
        login = await http.post(
            "/auth/login", json={"email": "octo@example.com", "password": PASSWORD, "mode": "cookie"}
        )
        user_id = login.json()["user"]["id"]
        await sign_in(http)
        http.cookies.clear()
        await sign_in(http)  # a fresh browser: signs in through the link
        me = (await http.get("/t/id/whoami")).json()
    assert me["id"] == user_id


@SQLITE_ONLY
async def test_closed_registration_refuses_new_oauth_accounts(oauth_app):
    """With registration closed, an unknown provider account gets 403 REGISTRATION_CLOSED."""
    async with serve(oauth_app(identity={"registration": "closed"})) as http:
        response = await sign_in(http)
    assert response.status_code == 403 and response.json()["code"] == "REGISTRATION_CLOSED"


async def test_stored_provider_tokens_are_unreadable_without_the_key(oauth_app, provider):
    """Provider tokens are stored AES-GCM encrypted under the keyring: the row holds no plaintext, the
    right key decrypts, another key does not; and the module hands the token to other modules."""
    app = oauth_app()
    async with serve(app) as http:
        await sign_in(http)
        user_id = (await http.get("/t/id/whoami")).json()["id"]
        async with app.platform.db.session() as db:
            row = (
                (await db.execute(text("SELECT id, access_token, refresh_token FROM identity_oauth_accounts")))
                .mappings()
                .one()
            )
        handed = await identity_of(app).oauth_access_token(user_id, "fake")
    ((access, refresh),) = provider.issued.items()
    blob, refresh_blob = bytes(row["access_token"]), bytes(row["refresh_token"])
    assert access.encode() not in blob and refresh.encode() not in refresh_blob
    assert handed == access
    context = identity_service.token_context(row["id"], "access")
    assert app.platform.keyring.decrypt(blob, context=context) == access.encode()
    stranger = Keyring({"other": os.urandom(32)}, "other")
    with pytest.raises(DecryptionError):
        stranger.decrypt(blob, context=context)
    with pytest.raises(DecryptionError):  # moved to another row or field: the AEAD context no longer matches
        app.platform.keyring.decrypt(blob, context=identity_service.token_context(row["id"], "refresh"))


@SQLITE_ONLY
async def test_old_ciphertexts_stay_readable_after_key_rotation(oauth_app, provider, identity_settings, make_app):
    """With a new active master key and the old one still listed, tokens stored before rotation decrypt."""
    old_key = base64.b64encode(os.urandom(32)).decode()
    app = oauth_app(crypto={"keys": {"2025": old_key}, "active_key_id": "2025"})
    async with serve(app) as http:
        await sign_in(http)
        async with app.platform.db.session() as db:
            row = (await db.execute(text("SELECT id, access_token FROM identity_oauth_accounts"))).mappings().one()
    rotated = Keyring.from_settings(
        identity_settings(
            crypto={
                "keys": {"2025": old_key, "2026": base64.b64encode(os.urandom(32)).decode()},
                "active_key_id": "2026",
            }
        ).crypto,
        app.settings.data_dir,
    )
    blob = bytes(row["access_token"])
    assert Keyring.key_id_of(blob) == "2025"
    assert (
        rotated.decrypt(blob, context=identity_service.token_context(row["id"], "access")).decode() in provider.issued
    )


@SQLITE_ONLY
async def test_session_from_oauth_works_with_bearer_too(oauth_app):
    """The OAuth callback's access cookie is a normal access token (usable as a bearer)."""
    async with serve(oauth_app()) as http:
        await sign_in(http)
        token = http.cookies.get("bastion_access")
        http.cookies.clear()
        response = await http.get("/t/id/whoami", headers=bearer(token))
    assert response.status_code == 200
