"""Principal guards: a resolver may refuse a credential, and the guards answer with its error."""

from __future__ import annotations

from typing import Any, cast

from litestar import Request, get

from bastion.core.errors import Forbidden
from bastion.core.module import Module, ModuleParts
from bastion.core.principal import Principal, refuse, require_principal
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
async def guarded(request: Request[Any, Any, Any]) -> dict[str, str]:
    return {"id": require_principal(cast("Any", request.scope)).id}


refusing_module = Module(
    name="refusing",
    build=lambda _ctx: ModuleParts(route_handlers=[guarded], principal_resolver=RefusingResolver()),
)


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
