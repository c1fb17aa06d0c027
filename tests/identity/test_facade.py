"""What other modules get of identity: the ``Identity`` facade, asked for by type, and the user each kind of
principal acts for."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import get
from litestar.di import NamedDependency, Provide

from bastion.core.dependencies import AppRequest
from bastion.core.module import Module, ModuleContext, ModuleParts
from bastion.identity.service import Identity
from tests.conftest import serve
from tests.identity.conftest import SQLITE_ONLY, bearer, identity_of, new_key, probe_module, register
from tests.support import routes_module


@get("/t/consumer/me")
async def me(request: AppRequest, consumer_identity: NamedDependency[Identity]) -> dict[str, Any]:
    profile = await consumer_identity.profile(request.principal_or_none)
    return {"email": profile.email if profile else None}


def _consumer(ctx: ModuleContext[Any]) -> ModuleParts:
    identity = ctx.require(Identity)  # a module listed after identity finds it by type
    return ModuleParts(
        route_handlers=[me],
        dependencies={"consumer_identity": Provide(lambda: identity, use_cache=True, sync_to_thread=False)},
    )


consumer_module = Module(name="consumer", build=_consumer)


@SQLITE_ONLY
async def test_a_module_requires_the_facade_by_type_and_reads_profiles(identity_app):
    """A module built after identity gets the same Identity object by type; its profile() is the caller's."""
    app = identity_app(extra=(routes_module, probe_module, consumer_module))
    async with serve(app) as http:
        session = await register(http, email="grace@example.com")
        signed_in = await http.get("/t/consumer/me", headers=bearer(session["access_token"]))
        anonymous = await http.get("/t/consumer/me")
    provided = app.litestar.dependencies["consumer_identity"].dependency()
    assert provided is identity_of(app)
    assert signed_in.json() == {"email": "grace@example.com"}
    assert anonymous.json() == {"email": None}


def test_a_module_listed_before_identity_cannot_require_it(identity_settings):
    """Requiring Identity from a module listed before identity fails when the app is built, naming both."""
    from bastion.app import create_app
    from bastion.modules import MODULES

    with pytest.raises(LookupError, match="'consumer' needs Identity"):
        create_app(identity_settings(), modules=[consumer_module, *MODULES])


@SQLITE_ONLY
def test_the_facade_reads_plan_limits_from_settings(identity_app):
    """Identity.plan_limits gives the configured plan, and the free plan's for an unknown one."""
    app = identity_app(identity={"plans": {"pro": {"api_keys": 9}}})
    identity = identity_of(app)
    assert identity.plan_limits("pro").api_keys == 9
    assert identity.plan_limits("enterprise") == identity.plan_limits("free")


@SQLITE_ONLY
async def test_each_principal_acts_for_its_user(identity_app):
    """The resolver sets user_id: a session's user, an API key's owner, and no user for a service."""
    secret = "s" * 40
    app = identity_app(identity={"services": {"cron": {"secret": secret, "scopes": ["*"]}}})
    async with serve(app) as http:
        session = await register(http)
        key = await new_key(http, session["access_token"])
        by_session = (await http.get("/t/id/whoami", headers=bearer(session["access_token"]))).json()
        by_key = (await http.get("/t/id/whoami", headers=bearer(key["key"]))).json()
        by_service = (await http.get("/t/id/whoami", headers=bearer(secret))).json()
    user_id = session["user"]["id"]
    assert by_session["user_id"] == user_id
    assert by_key["kind"] == "api_key" and by_key["user_id"] == user_id
    assert by_service["kind"] == "service" and by_service["user_id"] is None


@SQLITE_ONLY
async def test_a_service_cannot_hold_api_keys(identity_app):
    """A service principal, even with the keys scope, gets 403: it does not act for a user."""
    secret = "s" * 40
    app = identity_app(identity={"services": {"cron": {"secret": secret, "scopes": ["keys"]}}})
    async with serve(app) as http:
        created = await http.post("/api/keys", json={"name": "x"}, headers=bearer(secret))
        listed = await http.get("/api/keys", headers=bearer(secret))
    for response in (created, listed):
        assert response.status_code == 403
        assert response.json()["detail"] == "This credential does not act for a user."
