"""Per-route-group URL limits (RoutePolicy.max_url_length): raised for one group, global elsewhere."""

from __future__ import annotations

from typing import Any

from litestar import get
from litestar.params import FromPath

from bastion.core.edge.asgi import RoutePolicy
from bastion.core.edge.routes import RouteGroup
from bastion.core.module import Module, ModuleParts
from tests.conftest import serve


@get("/long/{rest:path}", sync_to_thread=False)
def long_path(rest: FromPath[str]) -> dict[str, int]:
    return {"length": len(rest)}


@get("/short/{rest:path}", sync_to_thread=False)
def short_path(rest: FromPath[str]) -> dict[str, int]:
    return {"length": len(rest)}


def _parts(_ctx: object) -> ModuleParts:
    return ModuleParts(
        route_handlers=[long_path, short_path],
        route_groups=[RouteGroup("/long", RoutePolicy(max_url_length=8192))],
    )


_module: Module[Any] = Module(name="url-limits", build=_parts)


async def test_route_group_may_raise_its_url_limit(make_app):
    """A group with max_url_length takes URLs up to it; other routes keep the global 2048-byte limit."""
    path = "x" * 4000
    async with serve(make_app(extra=(_module,))) as http:
        raised = await http.get(f"/long/{path}")
        too_long = await http.get(f"/long/{'x' * 8200}")
        other = await http.get(f"/short/{path}")
    assert raised.status_code == 200 and raised.json() == {"length": 4001}  # the path parameter keeps its "/"
    assert too_long.status_code == 414
    assert other.status_code == 414 and "2048" in other.json()["detail"]
