"""The page's routes: ``/`` (create), ``/s/{id}`` (reveal on click) and ``/assets/{name}``.

``/s/{id}`` is the same static document for every id: it holds no data, so a link preview, a mail
scanner or any other bot that fetches it learns nothing and consumes nothing. The script reads the id
from the address, asks the API for metadata (which never consumes), and reveals only on a click.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery

from bastion.core.errors import NotFound
from bastion.web.service import CSP, TYPES, Site

_HTML = TYPES[".html"]
_PAGE = {"content-security-policy": CSP, "cache-control": "no-cache", "x-robots-tag": "noindex, nofollow"}
_IMMUTABLE = "public, max-age=31536000, immutable"


@get("/", include_in_schema=False, sync_to_thread=False)
def create_page(web_site: NamedDependency[Site]) -> Response[bytes]:
    return Response(web_site.create_page, media_type=_HTML, headers=_PAGE)


@get("/s/{secret_id:str}", include_in_schema=False, sync_to_thread=False)
def reveal_page(secret_id: FromPath[str], web_site: NamedDependency[Site]) -> Response[bytes]:
    # Every id gets the same bytes, whether it exists or not: the page itself never tells.
    return Response(web_site.reveal_page, media_type=_HTML, headers={**_PAGE, "cache-control": "no-store"})


@get("/assets/{name:str}", include_in_schema=False, sync_to_thread=False)
def asset(
    request: Request[Any, Any, Any],
    name: FromPath[str],
    web_site: NamedDependency[Site],
    v: FromQuery[str | None] = None,
) -> Response[bytes]:
    found = web_site.asset(name)
    if found is None:
        raise NotFound("No such asset.")
    # A URL with the current version may be cached for good; any other only with revalidation.
    headers = {"etag": found.etag, "cache-control": _IMMUTABLE if v == found.version else "no-cache"}
    if request.headers.get("if-none-match") == found.etag:
        return Response(b"", status_code=304, headers=headers)
    return Response(found.body, media_type=found.content_type, headers=headers)


route_handlers = [create_page, reveal_page, asset]
