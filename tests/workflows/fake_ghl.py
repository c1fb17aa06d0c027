"""A local GoHighLevel speaking its wire format, for the sign-in, sync and token tests.

A raw asyncio HTTP/1.1 server (like ``tests/identity/fake_provider.py``) so it can misbehave as the real one
does: slowness, HTML error pages, dropped connections, 429s with GHL's rate-limit headers.

* ``GET /oauth/chooselocation``: the location chooser; redirects back with ``code`` and ``state`` for
  ``chosen_location`` (GHL may drop ``state``; this one keeps it).
* ``POST /oauth/token`` (form, client credentials in the form): ``authorization_code`` (with ``user_type``
  Location or Company) or ``refresh_token``; every refresh rotates the pair and the old refresh token stops
  working (400 ``invalid_grant``). Answers ``access_token, token_type, expires_in, refresh_token, scope,
  userType, locationId, companyId, userId``.
* ``POST /oauth/locationToken`` (company token, form ``companyId, locationId``): a location's tokens.
* ``GET /oauth/installedLocations?companyId=``: the company's locations with the app installed.
* ``GET /users/{id}``, ``GET /workflows/?locationId=`` (metadata only), ``GET /workflows/{id}``
  (definition; 403 ``WORKFLOW_API_NOT_ENABLED_FOR_LOCATION`` unless enabled for the location).
* API calls need ``Authorization: Bearer`` (401 ``Invalid JWT``), the ``Version`` header (400), a token of
  that location (403), and stay under ``rate_limit`` per ``window`` per location (else 429 with
  ``Retry-After``); each answer carries ``X-RateLimit-Max/-Remaining/-Interval-Milliseconds/-Limit-Daily/
  -Daily-Remaining``.

``behaviour[path]``: ``"html500"``, ``"drop"``, ``"drop-once"``, ``"429-once"``, ``"hang"``; ``delay[path]``
sleeps that many seconds before answering.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from tests.fake_http import listen, read_request, shut

CLIENT_ID = "ghl-test-client"
CLIENT_SECRET = "ghl-test-secret"
VERSION = "2021-07-28"


@dataclass
class Location:
    id: str
    name: str
    company_id: str
    workflows: list[dict[str, Any]] = field(default_factory=list)
    """Definitions (GHL-shaped JSON); the list endpoint answers their metadata."""
    definitions_enabled: bool = True


@dataclass
class Issued:
    resource: str  # location or company id
    user_type: str
    expires_at: float


@dataclass
class FakeGhl:
    locations: dict[str, Location] = field(default_factory=dict)
    users: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {
            "usr_ghl_1": {"id": "usr_ghl_1", "name": "Dana Agency", "email": "dana@agency.example"}
        }
    )
    chosen_location: str = "loc_1"
    company_id: str = "cmp_1"
    user_id: str = "usr_ghl_1"
    expires_in: int = 86_399
    rate_limit: int = 100
    window: float = 10.0
    behaviour: dict[str, str] = field(default_factory=dict)
    delay: dict[str, float] = field(default_factory=dict)
    grants: dict[str, tuple[str, str]] = field(default_factory=dict)  # code → (redirect_uri, used?)
    access: dict[str, Issued] = field(default_factory=dict)
    refresh: dict[str, Issued] = field(default_factory=dict)
    refreshes: dict[str, int] = field(default_factory=dict)
    """Successful refresh grants per location or company (the concurrency tests count them)."""
    rejected_refreshes: int = 0
    hits: dict[str, int] = field(default_factory=dict)
    calls: dict[str, list[float]] = field(default_factory=dict)  # location → API call times (rate limit)
    port: int = 0
    _server: asyncio.AbstractServer | None = None
    _release: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def provider_settings(self) -> dict[str, Any]:
        """Identity's ``gohighlevel`` provider pointed at this server."""
        return {
            "preset": "gohighlevel",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "authorize_url": f"{self.url}/oauth/chooselocation",
            "token_url": f"{self.url}/oauth/token",
            "userinfo_url": f"{self.url}/users/{{userId}}",
        }

    def workflows_settings(self, **overrides: Any) -> dict[str, Any]:
        return {"ghl_api_url": self.url, "ghl_client_id": CLIENT_ID, "ghl_client_secret": CLIENT_SECRET, **overrides}

    def add_location(self, id: str, name: str, *workflows: dict[str, Any], definitions: bool = True) -> Location:
        loc = Location(id, name, self.company_id, list(workflows), definitions)
        self.locations[id] = loc
        return loc

    def expire_all(self) -> None:
        for issued in self.access.values():
            issued.expires_at = 0

    async def start(self) -> None:
        self._server, self.port = await listen(self._serve)

    async def stop(self) -> None:
        await shut(self._server, self._release)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            method, target, headers, body = await read_request(reader)
            path = urlsplit(target).path
            self.hits[path] = self.hits.get(path, 0) + 1
            if (wait := self.delay.get(path)) is not None:
                await asyncio.sleep(wait)
            mode = self.behaviour.get(path)
            if mode in ("drop-once", "429-once"):
                del self.behaviour[path]
            if mode in ("drop", "drop-once"):
                return  # close without a byte of response
            if mode == "hang":
                await self._release.wait()
                return
            if mode == "html500":
                await _respond(writer, 500, b"<html><body>Internal Server Error</body></html>", "text/html")
                return
            if mode == "429-once":
                await _respond(
                    writer, 429, b'{"statusCode":429,"message":"Too Many Requests"}', extra={"Retry-After": "1"}
                )
                return
            status, payload, extra = self._route(method, target, headers, body)
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            await _respond(writer, status, data, extra=extra)
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()

    # -- routing -----------------------------------------------------------------------------------------

    def _route(self, method: str, target: str, headers: dict[str, str], body: bytes) -> tuple[int, Any, dict[str, str]]:
        parts = urlsplit(target)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()} if method == "POST" else {}
        if method == "GET" and parts.path == "/oauth/chooselocation":
            return self._choose(query)
        if method == "POST" and parts.path == "/oauth/token":
            return self._token(form)
        token = headers.get("authorization", "").removeprefix("Bearer ").strip()
        issued = self.access.get(token)
        if issued is None or issued.expires_at < time.time():
            return 401, {"statusCode": 401, "message": "Invalid JWT"}, {}
        if headers.get("version") != VERSION:
            return 400, {"statusCode": 400, "message": "Version header was not found"}, {}
        if method == "POST" and parts.path == "/oauth/locationToken":
            return self._location_token(issued, form)
        if method == "GET" and parts.path == "/oauth/installedLocations":
            if issued.user_type != "Company" or query.get("companyId") != issued.resource:
                return 403, {"statusCode": 403, "message": "Forbidden resource"}, {}
            locs = [{"_id": loc.id, "name": loc.name, "isInstalled": True} for loc in self.locations.values()]
            return 200, {"locations": locs, "count": len(locs)}, {}
        if method == "GET" and parts.path.startswith("/users/"):
            user = self.users.get(parts.path.removeprefix("/users/"))
            return (200, user, {}) if user else (404, {"statusCode": 404, "message": "User not found"}, {})
        if method == "GET" and parts.path.startswith("/workflows/"):
            return self._workflows(issued, parts.path.removeprefix("/workflows/"), query)
        return 404, {"statusCode": 404, "message": f"Cannot {method} {parts.path}"}, {}

    def _choose(self, q: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        if q.get("client_id") != CLIENT_ID or q.get("response_type") != "code":
            return 400, {"error": "invalid_request"}, {}
        code = secrets.token_urlsafe(16)
        self.grants[code] = (q["redirect_uri"], "")
        params = {"code": code, **({"state": q["state"]} if "state" in q else {})}
        return 302, b"", {"Location": f"{q['redirect_uri']}?{urlencode(params)}"}

    def _issue(self, resource: str, user_type: str) -> dict[str, Any]:
        access, refresh = "ghl_at_" + secrets.token_urlsafe(24), "ghl_rt_" + secrets.token_urlsafe(24)
        for old, held in list(self.refresh.items()):  # one live refresh token per resource: rotation
            if held.resource == resource:
                del self.refresh[old]
        issued = Issued(resource, user_type, time.time() + self.expires_in)
        self.access[access] = issued
        self.refresh[refresh] = Issued(resource, user_type, time.time() + 365 * 86_400)
        location = resource if user_type == "Location" else None
        return {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "refresh_token": refresh,
            "scope": "workflows.readonly users.readonly locations.readonly oauth.readonly oauth.write",
            "userType": user_type,
            **({"locationId": location} if location else {}),
            "companyId": self.company_id,
            "userId": self.user_id,
            "planId": "plan_basic",
        }

    def _token(self, form: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
            return 401, {"error": "invalid_client", "error_description": "Client authentication failed"}, {}
        user_type = form.get("user_type", "Location")
        if form.get("grant_type") == "authorization_code":
            grant = self.grants.pop(form.get("code", ""), None)
            if grant is None or grant[0] != form.get("redirect_uri"):
                return 400, {"error": "invalid_grant", "error_description": "Invalid authorization code"}, {}
            resource = self.chosen_location if user_type == "Location" else self.company_id
            return 200, self._issue(resource, user_type), {}
        if form.get("grant_type") == "refresh_token":
            held = self.refresh.pop(form.get("refresh_token", ""), None)
            if held is None:
                self.rejected_refreshes += 1
                return (
                    400,
                    {"error": "invalid_grant", "error_description": "Invalid grant: refresh token is invalid"},
                    {},
                )
            self.refreshes[held.resource] = self.refreshes.get(held.resource, 0) + 1
            return 200, self._issue(held.resource, held.user_type), {}
        return 400, {"error": "unsupported_grant_type"}, {}

    def _location_token(self, issued: Issued, form: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        loc = self.locations.get(form.get("locationId", ""))
        if issued.user_type != "Company" or form.get("companyId") != issued.resource or loc is None:
            return 400, {"statusCode": 400, "message": "Location not found for this company"}, {}
        return 200, self._issue(loc.id, "Location"), {}

    def _workflows(self, issued: Issued, rest: str, q: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        location_id = q.get("locationId", issued.resource)
        if issued.user_type != "Location" or location_id != issued.resource:
            return 403, {"statusCode": 403, "message": "The token does not have access to this location"}, {}
        limited = self._rate(location_id)
        if limited is not None:
            return limited
        headers = self._rate_headers(location_id)
        loc = self.locations[location_id]
        if rest == "":
            meta = [
                {k: w.get(k) for k in ("id", "name", "status", "version")}
                | {
                    "createdAt": "2026-01-01T00:00:00.000Z",
                    "updatedAt": "2026-11-30T12:00:00.000Z",
                    "locationId": loc.id,
                }
                for w in loc.workflows
            ]
            return 200, {"workflows": meta}, headers
        if not loc.definitions_enabled:
            return 403, {"statusCode": 403, "message": "WORKFLOW_API_NOT_ENABLED_FOR_LOCATION"}, headers
        found = next((w for w in loc.workflows if w["id"] == rest), None)
        if found is None:
            return 404, {"statusCode": 404, "message": "Workflow not found"}, headers
        return 200, found, headers

    def _rate(self, location_id: str) -> tuple[int, Any, dict[str, str]] | None:
        now = time.time()
        recent = [t for t in self.calls.get(location_id, []) if t > now - self.window]
        if len(recent) >= self.rate_limit:
            self.calls[location_id] = recent
            wait = max(1, int(recent[0] + self.window - now + 1))
            return (
                429,
                {"statusCode": 429, "message": "Too Many Requests"},
                {"Retry-After": str(wait), **self._rate_headers(location_id)},
            )
        self.calls[location_id] = [*recent, now]
        return None

    def _rate_headers(self, location_id: str) -> dict[str, str]:
        used = len(self.calls.get(location_id, []))
        return {
            "X-RateLimit-Max": str(self.rate_limit),
            "X-RateLimit-Remaining": str(max(0, self.rate_limit - used)),
            "X-RateLimit-Interval-Milliseconds": str(int(self.window * 1000)),
            "X-RateLimit-Limit-Daily": "200000",
            "X-RateLimit-Daily-Remaining": str(200_000 - used),
        }


async def _respond(
    writer: asyncio.StreamWriter,
    status: int,
    body: bytes,
    content_type: str = "application/json",
    extra: dict[str, str] | None = None,
) -> None:
    reasons = {200: "OK", 302: "Found", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found"}
    reason = {429: "Too Many Requests", 500: "Internal Server Error", **reasons}.get(status, "Status")
    head = [
        f"HTTP/1.1 {status} {reason}",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
        "Connection: close",
        *(f"{k}: {v}" for k, v in (extra or {}).items()),
    ]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
    await writer.drain()
