"""Principals and their guards: who a principal acts for, a resolver's refusal answered by the guard, and
the request's typed accessors (``AppRequest``)."""

from __future__ import annotations

from typing import Any

import pytest
from litestar import get

from bastion.core.dependencies import AppRequest
from bastion.core.errors import Forbidden
from bastion.core.module import Module, ModuleParts
from bastion.core.principal import Principal, refuse, require_user
from tests.conftest import serve
from tests.support import routes_module


class RefusingResolver:
    """``Bearer bad`` is refused with a 403; ``Bearer good`` is a user; anything else is anonymous."""

    async def __call__(self, scope: Any, ctx: Any) -> Principal | None:
        if ctx.authorization == b"Bearer good":
            return Principal(kind="user", id="u1")
        if ctx.authorization == b"Bearer bad":
            refuse(scope, Forbidden("Refused for a reason the resolver knows."))
        return None


@get("/t/guarded")
async def guarded(request: AppRequest) -> dict[str, str]:
    return {"id": request.principal.id}


@get("/t/optional")
async def optional(request: AppRequest) -> dict[str, str | None]:
    found = request.principal_or_none
    return {"id": found.id if found else None}


@get("/t/context")
async def context(request: AppRequest) -> dict[str, str]:
    return {"client": request.context.client, "request_id": request.context.request_id}


refusing_module: Module[Any] = Module(
    name="refusing",
    build=lambda _ctx: ModuleParts(route_handlers=[guarded, optional, context], principal_resolver=RefusingResolver()),
)


def test_a_user_acts_for_itself():
    """A user principal's user_id is its own id, filled in when not given."""
    assert Principal(kind="user", id="u1").user_id == "u1"
    assert Principal(kind="user", id="u1", user_id="u1").user_id == "u1"


def test_a_user_cannot_act_for_another_user():
    """A user principal naming another user as the one it acts for is a programming error."""
    with pytest.raises(ValueError, match="acts for itself"):
        Principal(kind="user", id="u1", user_id="u2")


def test_an_api_key_acts_for_its_owner():
    """An API key's user_id is the owner its resolver gives (None if it gives none)."""
    assert Principal(kind="api_key", id="k1", user_id="u1").user_id == "u1"
    assert Principal(kind="api_key", id="k1").user_id is None


def test_a_service_acts_for_nobody():
    """A service principal has no user_id, and cannot be given one."""
    assert Principal(kind="service", id="cron").user_id is None
    with pytest.raises(ValueError, match="no user"):
        Principal(kind="service", id="cron", user_id="u1")


def test_require_user_refuses_a_principal_without_a_user():
    """require_user gives the acting user, and 403 'does not act for a user' for a service."""
    assert require_user(Principal(kind="api_key", id="k1", user_id="u1")) == "u1"
    with pytest.raises(Forbidden, match=r"This credential does not act for a user\."):
        require_user(Principal(kind="service", id="cron"))


async def test_a_refused_credential_gets_the_resolvers_error(make_app):
    """A guarded route answers with the error the resolver recorded, not the generic 401."""
    async with serve(make_app(extra=(routes_module, refusing_module))) as http:
        response = await http.get("/t/guarded", headers={"Authorization": "Bearer bad"})
    assert response.status_code == 403
    assert response.json()["detail"] == "Refused for a reason the resolver knows."


async def test_a_refused_credential_is_anonymous_on_open_routes(make_app):
    """A refusal only matters where a principal is required: open routes serve the request anonymously."""
    async with serve(make_app(extra=(routes_module, refusing_module))) as http:
        response = await http.get("/t/principal", headers={"Authorization": "Bearer bad"})
    assert response.status_code == 200 and response.json()["principal"] is None


async def test_without_a_refusal_the_guard_says_401(make_app):
    """No credential, or one nobody recognised: the generic 401 with WWW-Authenticate."""
    async with serve(make_app(extra=(routes_module, refusing_module))) as http:
        anonymous = await http.get("/t/guarded")
        good = await http.get("/t/guarded", headers={"Authorization": "Bearer good"})
    assert anonymous.status_code == 401 and anonymous.json()["code"] == "UNAUTHORIZED"
    assert "bearer" in anonymous.headers["www-authenticate"].lower()
    assert good.status_code == 200 and good.json() == {"id": "u1"}


async def test_an_anonymous_caller_is_none_where_a_principal_is_optional(make_app):
    """request.principal_or_none is None for an anonymous caller, and the caller when signed in."""
    async with serve(make_app(extra=(routes_module, refusing_module))) as http:
        anonymous = await http.get("/t/optional")
        good = await http.get("/t/optional", headers={"Authorization": "Bearer good"})
    assert anonymous.status_code == 200 and anonymous.json() == {"id": None}
    assert good.json() == {"id": "u1"}


async def test_a_refused_credential_is_none_where_a_principal_is_optional(make_app):
    """A refused credential is anonymous to request.principal_or_none: the refusal is not raised there."""
    async with serve(make_app(extra=(routes_module, refusing_module))) as http:
        response = await http.get("/t/optional", headers={"Authorization": "Bearer bad"})
    assert response.status_code == 200 and response.json() == {"id": None}


async def test_the_request_context_is_the_edges(make_app):
    """request.context is the context the edge built: the client address and the echoed request id."""
    async with serve(make_app(extra=(routes_module, refusing_module))) as http:
        response = await http.get("/t/context")
    assert response.json() == {"client": "198.51.100.7", "request_id": response.headers["x-request-id"]}
