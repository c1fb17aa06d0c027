"""The API contract as served: the OpenAPI document made to tell the truth, and the reference page at /docs.

Litestar documents each operation's success and one 400 in its own error shape (``application/json``,
``{status_code, detail, extra}``), while every error a client of Bastion sees is RFC 9457 problem+json
rendered by the edge (``core/errors.py``), with statuses Litestar does not know of (the edge's 408, 413,
414, 415, 429, 431, the principal's 401/403, a module's 404/409, a dependency's 503). :func:`complete`
rewrites the generated document once, before it is first served:

* a ``Problem`` schema in ``components`` and, on every operation, each status it can answer with
  (those of :data:`ANY_OPERATION`, plus :data:`WITH_BODY` where a body is taken) as
  ``application/problem+json``; ``default`` covers any other status (e.g. an upstream's 502/504);
* ``additionalProperties: false`` on the schema of every msgspec struct that forbids unknown fields (msgspec
  refuses them with a 422; Litestar's document said nothing, so a client generated from it sent them);
* Litestar's own 400 shape removed, since no client ever receives it, and the JSON ``null`` content it
  gives a 204 (a 204 has no body).

:func:`fix_options_allow` makes ``OPTIONS`` answer the methods the route serves: Litestar builds the
automatic OPTIONS handler for the first handler registered on a path and keeps it when handlers for other
methods of that path are merged in, so ``OPTIONS /api/keys`` said ``Allow: OPTIONS, POST`` while ``GET`` is
served and documented.

:func:`api_reference` serves the API reference page at ``/docs``: Litestar's Scalar render plugin over
``/schema/openapi.json``, with a Content-Security-Policy of its own that lets the page load Scalar from its CDN
(the API's own policy, ``default-src 'none'``, would leave it blank).
"""

from __future__ import annotations

import base64
import hashlib
import re
from http import HTTPStatus
from typing import Any

import msgspec
from litestar import Litestar, Request, Response, get
from litestar.openapi.plugins import JsonRenderPlugin, ScalarRenderPlugin
from litestar.routes import HTTPRoute

__all__ = ["ANY_OPERATION", "WITH_BODY", "ProblemJsonRenderPlugin", "api_reference", "complete", "fix_options_allow"]

PROBLEM_MEDIA_TYPE = "application/problem+json"
ANY_OPERATION = (400, 401, 403, 404, 409, 414, 422, 429, 431, 500, 503)
"""Statuses any operation can answer with: the edge's guards (400 for a NUL in the URL, 414, 431), admission
(429), the principal (401, 403), a module's domain errors (404, 409), validation (422), a dependency (503)."""
WITH_BODY = (408, 413, 415)
"""And for operations that take a body: too slow (408), too large (413), of a media type not taken (415)."""

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "An RFC 9457 problem; extra members (e.g. errors, max_bytes, accepted) depend on the code.",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string", "description": "A URI reference naming the kind of problem."},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "code": {"type": "string", "description": "A stable code, e.g. RATE_LIMITED or VALIDATION_FAILED."},
        "request_id": {"type": ["string", "null"]},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
    "additionalProperties": True,
}
_REF = {"$ref": "#/components/schemas/Problem"}
_NO_CONTENT = frozenset({"204", "304"})
_BODY_METHODS = frozenset({"post", "put", "patch", "delete"})
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def _problem_response(status: int | str) -> dict[str, Any]:
    description = "Any other error" if status == "default" else HTTPStatus(int(status)).phrase
    return {"description": description, "content": {PROBLEM_MEDIA_TYPE: {"schema": _REF}}}


def _strict_structs() -> dict[str, set[str]]:
    """Name → encoded field names of every msgspec struct class (loaded so far) that forbids unknown fields."""
    found: dict[str, set[str]] = {}
    pending = list(msgspec.Struct.__subclasses__())
    while pending:
        kind = pending.pop()
        pending.extend(kind.__subclasses__())
        if kind.__struct_config__.forbid_unknown_fields:
            found[kind.__name__] = set(kind.__struct_encode_fields__)
    return found


def complete(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` (an OpenAPI 3.1 dict as Litestar generates it) with every error documented as problem+json."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    strict = _strict_structs()
    for name, schema in schemas.items():
        fields = strict.get(schema.get("title", name))
        if fields is not None and set(schema.get("properties", {})) <= fields:
            schema["additionalProperties"] = False
    schemas["Problem"] = PROBLEM_SCHEMA
    for path_item in document.get("paths", {}).values():
        for method in _METHODS:
            operation = path_item.get(method)
            if operation is None:
                continue
            responses: dict[str, Any] = operation.setdefault("responses", {})
            for documented in list(responses):
                if documented in _NO_CONTENT:  # Litestar gives a 204 a JSON ``null`` body, which it never sends
                    responses[documented].pop("content", None)
                content = responses[documented].get("content") or {}
                if documented.startswith(("4", "5")) and PROBLEM_MEDIA_TYPE not in content:
                    del responses[documented]  # Litestar's own error shape: never sent to a client of Bastion
            takes_body = method in _BODY_METHODS or "requestBody" in operation  # the guards' body checks apply
            statuses = ANY_OPERATION + (WITH_BODY if takes_body else ())
            for status in statuses:
                responses.setdefault(str(status), _problem_response(status))
            responses.setdefault("default", _problem_response("default"))
    return document


class ProblemJsonRenderPlugin(JsonRenderPlugin):
    """Litestar's JSON render plugin, serving the document after :func:`complete` (once; Litestar caches it)."""

    def render(self, request: Any, openapi_schema: dict[str, Any]) -> bytes:
        if "Problem" not in openapi_schema.get("components", {}).get("schemas", {}):
            complete(openapi_schema)
        return super().render(request, openapi_schema)


def fix_options_allow(app: Litestar) -> None:
    """Point each path's automatic OPTIONS handler at the route that serves the path (see the module docstring).

    Hand-written because the handler is a closure over the route it was made for: its ``self`` cell is the
    only place that names the stale route (Litestar 2.25, ``routes/http.py``, ``create_options_handler``)."""
    for route in app.routes:
        if not isinstance(route, HTTPRoute) or "OPTIONS" not in route.route_handler_map:
            continue
        handler, _ = route.route_handler_map["OPTIONS"]
        fn = getattr(handler.fn, "__wrapped__", handler.fn)
        if getattr(fn, "__name__", "") != "options_handler" or not fn.__closure__:
            continue
        for cell in fn.__closure__:
            if isinstance(cell.cell_contents, HTTPRoute) and cell.cell_contents is not route:
                cell.cell_contents = route


class _Scalar(ScalarRenderPlugin):
    @staticmethod
    def get_openapi_json_route(request: Request[Any, Any, Any]) -> str:
        # Litestar reverses the JSON handler's name, which also names the bare /schema route: either may come back.
        return f"{request.app.openapi_config.path}/openapi.json"  # type: ignore[union-attr]


_SCALAR = _Scalar(version="1.25.0")  # pinned: the page loads exactly this build from the CDN
DOCS_CSP = (
    "default-src 'none'; script-src https://cdn.jsdelivr.net{inline}; "
    "style-src 'unsafe-inline' https://cdn.jsdelivr.net; "
    "font-src https://cdn.jsdelivr.net https://fonts.scalar.com data:; img-src 'self' data: https:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
_INLINE_SCRIPT = re.compile(rb"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", re.S)


def _inline_hashes(page: bytes) -> str:
    """The page's inline scripts (Scalar's configuration element) allowed by hash, as CSP level 2 reads them:
    without them Chromium refuses to run each one and reports a violation on every load."""
    digests = {base64.b64encode(hashlib.sha256(body).digest()).decode() for body in _INLINE_SCRIPT.findall(page)}
    return "".join(f" 'sha256-{digest}'" for digest in sorted(digests))


@get("/docs", include_in_schema=False, sync_to_thread=False)
def api_reference(request: Request[Any, Any, Any]) -> Response[bytes]:
    """The API reference (Scalar) over this server's OpenAPI document."""
    page = _SCALAR.render(request, {"info": {"title": request.app.openapi_config.title}})  # type: ignore[union-attr]
    csp = DOCS_CSP.format(inline=_inline_hashes(page))
    return Response(page, media_type="text/html", headers={"content-security-policy": csp})
