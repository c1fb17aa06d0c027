"""Accounts: registration modes and invites, administration, plans, and what other modules are given."""

from __future__ import annotations

from typing import Any

from bastion.core.principal import Principal
from bastion.identity import service as identity
from tests.conftest import serve
from tests.identity.conftest import PASSWORD, SQLITE_ONLY, bearer, identity_of, new_key, register, service_of


async def _owner_session(app, http) -> dict[str, Any]:
    """Make an owner through the service (as the command line does) and sign in as it."""
    await service_of(app).accounts.create_user(email="owner@example.com", password=PASSWORD, role="owner")
    response = await http.post("/auth/login", json={"email": "owner@example.com", "password": PASSWORD})
    session: dict[str, Any] = response.json()
    return session


@SQLITE_ONLY
async def test_closed_registration_refuses_everybody(identity_app):
    """With registration closed, POST /auth/register is 403 REGISTRATION_CLOSED."""
    async with serve(identity_app(identity={"registration": "closed"})) as http:
        response = await http.post("/auth/register", json={"email": "ada@example.com", "password": PASSWORD})
    assert response.status_code == 403 and response.json()["code"] == "REGISTRATION_CLOSED"


async def test_invite_only_registration_needs_a_valid_invite(identity_app):
    """Invite mode: no invite is 403; an owner's invite works once, with the invite's role and address."""
    app = identity_app(identity={"registration": "invite"})
    async with serve(app) as http:
        owner = await _owner_session(app, http)
        without = await http.post("/auth/register", json={"email": "ada@example.com", "password": PASSWORD})
        made = await http.post(
            "/api/invites", json={"email": "ada@example.com", "role": "admin"}, headers=bearer(owner["access_token"])
        )
        invite = made.json()["token"]
        wrong_address = await http.post(
            "/auth/register", json={"email": "eve@example.com", "password": PASSWORD, "invite": invite}
        )
        joined = await http.post(
            "/auth/register", json={"email": "ada@example.com", "password": PASSWORD, "invite": invite}
        )
        reused = await http.post(
            "/auth/register", json={"email": "ada2@example.com", "password": PASSWORD, "invite": invite}
        )
    assert without.status_code == 403
    assert made.status_code == 201 and invite.startswith("bsi_")
    assert wrong_address.status_code == 422 and wrong_address.json()["errors"][0]["field"] == "invite"
    assert joined.status_code == 201 and joined.json()["user"]["role"] == "admin"
    assert reused.status_code == 422


@SQLITE_ONLY
async def test_only_owner_and_admins_see_users(identity_app):
    """GET /api/users is 403 for a user and lists accounts for the owner."""
    app = identity_app()
    async with serve(app) as http:
        user = await register(http)
        owner = await _owner_session(app, http)
        refused = await http.get("/api/users", headers=bearer(user["access_token"]))
        listed = await http.get("/api/users", headers=bearer(owner["access_token"]))
    assert refused.status_code == 403
    assert {u["email"] for u in listed.json()} == {"ada@example.com", "owner@example.com"}


async def test_disabling_a_user_stops_its_credentials_at_once(identity_app):
    """An admin disabling an account ends its cached sessions and keys immediately."""
    app = identity_app()
    async with serve(app) as http:
        user = await register(http)
        key = await new_key(http, user["access_token"])
        owner = await _owner_session(app, http)
        assert (await http.get("/t/id/whoami", headers=bearer(key["key"]))).status_code == 200
        assert (await http.get("/t/id/whoami", headers=bearer(user["access_token"]))).status_code == 200
        patched = await http.patch(
            f"/api/users/{user['user']['id']}", json={"disabled": True}, headers=bearer(owner["access_token"])
        )
        by_key = await http.get("/t/id/whoami", headers=bearer(key["key"]))
        by_session = await http.get("/t/id/whoami", headers=bearer(user["access_token"]))
        login = await http.post("/auth/login", json={"email": "ada@example.com", "password": PASSWORD})
    assert patched.status_code == 200 and patched.json()["disabled"] is True
    assert by_key.status_code == 401 and by_session.status_code == 401
    assert login.status_code == 401 and login.json()["code"] == "INVALID_CREDENTIALS"


@SQLITE_ONLY
async def test_the_owner_cannot_be_demoted_or_disabled(identity_app):
    """No one, the owner included, can disable or demote the owner through the API."""
    app = identity_app()
    async with serve(app) as http:
        owner = await _owner_session(app, http)
        response = await http.patch(
            f"/api/users/{owner['user']['id']}", json={"disabled": True}, headers=bearer(owner["access_token"])
        )
    assert response.status_code == 403


async def test_plan_change_shows_on_cached_principals_at_once(identity_app):
    """set_plan (what billing calls) is seen by the next request of an already cached key and session."""
    app = identity_app()
    async with serve(app) as http:
        user = await register(http)
        key = await new_key(http, user["access_token"])
        assert (await http.get("/t/id/whoami", headers=bearer(key["key"]))).json()["attrs"]["plan"] == "free"
        await identity_of(app).set_plan(user["user"]["id"], "pro")
        by_key = (await http.get("/t/id/whoami", headers=bearer(key["key"]))).json()
        by_session = (await http.get("/t/id/whoami", headers=bearer(user["access_token"]))).json()
    assert by_key["attrs"]["plan"] == "pro" and by_session["attrs"]["plan"] == "pro"


@SQLITE_ONLY
async def test_profile_is_the_user_behind_any_principal(identity_app):
    """profile() gives the user for a session and for an API key, and None for a service or nobody."""
    app = identity_app()
    async with serve(app) as http:
        user = await register(http, display_name="Ada Lovelace")
        key = await new_key(http, user["access_token"])
        owner_id = user["user"]["id"]
        key_principal = Principal(kind="api_key", id=key["id"], attrs={"user_id": owner_id}, user_id=owner_id)
        by_key = await identity_of(app).profile(key_principal)
        by_user = await identity_of(app).profile(Principal(kind="user", id=user["user"]["id"]))
        service = await identity_of(app).profile(Principal(kind="service", id="cron"))
        nobody = await identity_of(app).profile(None)
    assert by_key == by_user
    assert (by_user.id, by_user.email, by_user.login, by_user.display_name, by_user.role, by_user.plan) == (
        user["user"]["id"],
        "ada@example.com",
        "ada",
        "Ada Lovelace",
        "user",
        "free",
    )
    assert by_user.avatar_url is None and not by_user.is_owner
    assert service is None and nobody is None


def test_plan_limits_come_from_settings(identity_settings):
    """plan_limits reads each plan from settings, with operator overrides and extra limits."""
    settings = identity_settings(identity={"plans": {"pro": {"api_keys": 7, "uploads_per_day": 50}}})
    pro = identity.plan_limits(settings, "pro")
    assert pro.api_keys == 7 and pro.extra("uploads_per_day") == 50
    assert pro.workflow_issues_shown is None  # the unchanged defaults stay
    assert identity.plan_limits(settings, "free").workflow_issues_shown == 3
    assert identity.plan_limits(settings.identity, "unknown") == identity.plan_limits(settings, "free")


@SQLITE_ONLY
async def test_service_secret_is_a_service_principal(identity_app):
    """A configured cron secret authenticates as kind=service with its scopes; a wrong one does not."""
    secret = "s" * 40
    app = identity_app(identity={"services": {"cron": {"secret": secret, "scopes": ["cron"]}}})
    async with serve(app) as http:
        right = await http.get("/t/id/whoami", headers=bearer(secret))
        wrong = await http.get("/t/id/whoami", headers=bearer("s" * 39 + "t"))
    assert right.status_code == 200
    assert right.json()["kind"] == "service" and right.json()["id"] == "cron" and right.json()["scopes"] == ["cron"]
    assert wrong.status_code == 401 and wrong.json()["code"] == "UNAUTHORIZED"


async def test_other_schemes_are_left_to_other_resolvers(identity_settings, make_app):
    """A bearer value identity does not recognise is neither refused nor claimed (a later resolver may)."""
    from tests.identity.conftest import probe_module
    from tests.support import principal_module, routes_module

    app = make_app(identity_settings(), extra=(routes_module, probe_module, principal_module))
    async with serve(app) as http:
        response = await http.get("/t/id/whoami", headers=bearer("user-grace"))
    assert response.status_code == 200 and response.json()["id"] == "grace"
