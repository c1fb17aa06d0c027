"""Serving hosted Spark apps: the edge hook (after admission) that answers requests on an app's host.

On a registered host:

* ``/_spark/*`` goes to the runtime's routes, marked with the app (``scope[HOSTED_KEY]``) so every KV call
  uses that app's namespace, whoever the user is; ``/auth/*`` (the sign-in page and its API) goes to identity.
* Anything else is the app's files, GET and HEAD only. A private app sends a signed-out visitor to
  ``/auth/signin?next=…`` before any file; a public one serves everybody.
* A path names a file under ``dist/`` or nothing: ``.`` and ``..`` segments, dot-files, NUL and backslashes
  are refused, and the resolved file (symbolic links followed) must still be under ``dist/``.
* A missing path without an extension is a client-side route: ``index.html``. A missing file is a 404.
* ``index.html`` is ``no-cache`` (a new build shows at once); ``/assets/*`` (Vite's content-hashed names)
  is cached for a year, immutable; other files revalidate with their ETag.
* The app's own Content-Security-Policy: what a Vite build needs (its scripts and styles from the app's
  origin, inline style attributes that React and Radix set, data:/blob: images and fonts, ``fetch`` to
  its own origin) and nothing else: no inline or remote scripts, no plugins, no framing by other sites.

Hosts that are not registered pass through untouched. Written as middleware rather than as Litestar routes:
which app (and whether files at all) depends on the ``Host``, and a catch-all route would shadow every
other module's routes on every host.
"""

from __future__ import annotations

import asyncio
import mimetypes
import stat
from pathlib import Path
from urllib.parse import quote

from bastion.core.edge.asgi import (
    CONTEXT_KEY,
    ASGIApp,
    Receive,
    RequestContext,
    Scope,
    Send,
    find_header,
    send_problem,
)
from bastion.core.errors import MethodNotAllowed, NotFound
from bastion.spark.apps import AppRegistry, HostedApp

HOSTED_KEY = "bastion.spark.app"
"""The scope key the runtime's routes read the hosted app from."""
APP_CSP = (
    b"default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    b"font-src 'self' data:; connect-src 'self'; media-src 'self' data: blob:; worker-src 'self' blob:; "
    b"object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'self'"
)
_IMMUTABLE = b"max-age=31536000, immutable"
_CHUNK = 65_536
_PASS_THROUGH = ("/_spark/", "/auth/")


class HostedAppsMiddleware:
    def __init__(self, app: ASGIApp, *, registry: AppRegistry) -> None:
        self.app = app
        self.registry = registry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ctx: RequestContext = scope[CONTEXT_KEY]
        hosted = self.registry.find(ctx.host)
        if hosted is None:
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith(_PASS_THROUGH) or path == "/_spark":
            scope[HOSTED_KEY] = hosted
            await self.app(scope, receive, send)
            return
        if scope["method"] not in ("GET", "HEAD"):
            error = MethodNotAllowed("An app's files are read with GET or HEAD.")
            error.headers["allow"] = "GET, HEAD"
            await send_problem(send, error, ctx.request_id)
            return
        if not hosted.public and ctx.principal is None:
            await _redirect_to_signin(scope, send)
            return
        found = await asyncio.to_thread(resolve, hosted, path)
        if found is None:
            await send_problem(send, NotFound("No such file in this app."), ctx.request_id)
            return
        await _send_file(scope, send, hosted, found)


def resolve(app: HostedApp, path: str) -> Path | None:
    """The file under ``app.dist`` that ``path`` names (``index.html`` for a client-side route), or None."""
    if "\x00" in path or "\\" in path:
        return None
    segments = [s for s in path.split("/") if s]
    if any(s.startswith(".") for s in segments):
        return None  # ".", "..", and dot-files (.env, .git) are never served
    candidate = app.dist.joinpath(*segments) if segments else app.dist / "index.html"
    try:
        real = candidate.resolve(strict=True)
    except (OSError, RuntimeError):
        real = None
    if real is not None and real.is_relative_to(app.dist) and real.is_file():
        return real
    if real is not None and real.is_dir() and real.is_relative_to(app.dist) and (real / "index.html").is_file():
        return real / "index.html"
    if segments and ("." in segments[-1] or segments[0] == "assets"):
        return None  # a missing file, not a route
    index = app.dist / "index.html"
    return index if index.is_file() else None


async def _redirect_to_signin(scope: Scope, send: Send) -> None:
    target = scope["path"]
    query: bytes = scope.get("query_string", b"")
    if query:
        target += "?" + query.decode("latin-1")
    location = "/auth/signin?next=" + quote(target, safe="")
    await send(
        {
            "type": "http.response.start",
            "status": 303,
            "headers": [(b"location", location.encode()), (b"content-length", b"0"), (b"cache-control", b"no-store")],
        }
    )
    await send({"type": "http.response.body", "body": b""})


async def _send_file(scope: Scope, send: Send, app: HostedApp, file: Path) -> None:
    info = await asyncio.to_thread(file.stat)
    if not stat.S_ISREG(info.st_mode):
        await send_problem(send, NotFound("No such file in this app."), None)
        return
    etag = b'"%x-%x"' % (info.st_size, info.st_mtime_ns)
    kind, _ = mimetypes.guess_type(file.name)
    content_type = (kind or "application/octet-stream").encode()
    if content_type.startswith(b"text/") or content_type in (b"application/javascript", b"application/json"):
        content_type += b"; charset=utf-8"
    scope_public = b"public, " if app.public else b"private, "
    if file.name == "index.html":
        cache = b"no-cache"
    elif file.parent.name == "assets" and file.parent.parent == app.dist:
        cache = scope_public + _IMMUTABLE
    else:
        cache = scope_public + b"no-cache"
    headers = [
        (b"content-type", content_type),
        (b"cache-control", cache),
        (b"etag", etag),
        (b"content-security-policy", APP_CSP),
        (b"x-frame-options", b"SAMEORIGIN"),
        (b"vary", b"Cookie"),
    ]
    sent_tag = find_header(scope, b"if-none-match")
    if sent_tag is not None and etag in [t.strip() for t in sent_tag.split(b",")]:
        await send({"type": "http.response.start", "status": 304, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
        return
    headers.append((b"content-length", str(info.st_size).encode()))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    if scope["method"] == "HEAD":
        await send({"type": "http.response.body", "body": b""})
        return
    handle = await asyncio.to_thread(file.open, "rb")
    try:
        while True:
            chunk = await asyncio.to_thread(handle.read, _CHUNK)
            more = len(chunk) == _CHUNK
            await send({"type": "http.response.body", "body": chunk, "more_body": more})
            if not more:
                return
    finally:
        await asyncio.to_thread(handle.close)
