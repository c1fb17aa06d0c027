"""The sign-in page's routes: ``GET /auth/signin?next=/path`` and its two files (see page.py)."""

from __future__ import annotations

from typing import Annotated

from litestar import Response, get
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter

from bastion.core.errors import NotFound
from bastion.identity.page import ASSETS, CSP
from bastion.identity.validation import safe_next
from bastion.identity.wiring import IdentityParts


@get("/auth/signin", include_in_schema=False, sync_to_thread=False)
def signin_page(
    identity: NamedDependency[IdentityParts],
    next_path: Annotated[str | None, QueryParameter(name="next")] = None,
) -> Response[bytes]:
    body = identity.page.render(safe_next(next_path, identity.config.login_redirect))
    headers = {"content-security-policy": CSP, "cache-control": "no-store", "x-robots-tag": "noindex"}
    return Response(body, media_type="text/html", headers=headers)


@get("/auth/assets/{name:str}", include_in_schema=False, sync_to_thread=False)
def signin_asset(name: FromPath[str], identity: NamedDependency[IdentityParts]) -> Response[bytes]:
    body = identity.page.assets.get(name)
    if body is None:
        raise NotFound("No such file.")
    return Response(body, media_type=ASSETS[name], headers={"cache-control": "public, max-age=31536000, immutable"})


route_handlers = [signin_page, signin_asset]
