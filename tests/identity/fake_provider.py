"""A local OAuth 2.0 provider speaking the real wire format, for the sign-in tests.

A raw asyncio HTTP/1.1 server (not an ASGI app) so that it can also misbehave the way real providers
do: an HTML error page, an answer that never comes, a connection dropped mid-request.

* ``GET /authorize`` checks client_id, redirect_uri, response_type=code and an S256 code challenge, then
  redirects back with ``code`` and ``state`` (or ``error=access_denied`` when ``deny`` is set);
* ``POST /token`` authenticates the client (HTTP Basic), checks the code is known, unused, for this
  redirect_uri, and that SHA-256(code_verifier) is the challenge; else 400 ``invalid_grant``;
* ``GET /user`` and ``GET /user/emails`` answer for a valid access token (GitHub-shaped).

``behaviour[path]`` switches an endpoint to ``"html500"``, ``"hang"`` or ``"drop"``; ``"drop-once"`` drops
the next request to it and then answers normally again.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from tests.fake_http import listen, read_request, shut

CLIENT_ID = "bastion-test-client"
CLIENT_SECRET = "fake-provider-client-secret"


@dataclass
class Grant:
    challenge: str
    redirect_uri: str
    used: bool = False


@dataclass
class FakeProvider:
    user: dict[str, Any] = field(
        default_factory=lambda: {
            "id": 4242,
            "login": "octo-cat",
            "name": "Octo Cat",
            "avatar_url": "https://avatars.example/4242",
            "email": None,
        }
    )
    emails: list[dict[str, Any]] = field(
        default_factory=lambda: [{"email": "octo@example.com", "primary": True, "verified": True}]
    )
    deny: bool = False
    behaviour: dict[str, str] = field(default_factory=dict)
    grants: dict[str, Grant] = field(default_factory=dict)
    issued: dict[str, str] = field(default_factory=dict)
    """access token → refresh token handed out (the tests look for them in the database)."""
    hits: dict[str, int] = field(default_factory=dict)
    port: int = 0
    _server: asyncio.AbstractServer | None = None
    _release: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def settings(self, **overrides: Any) -> dict[str, Any]:
        """The provider's entry for BASTION_IDENTITY__OAUTH_PROVIDERS (GitHub-shaped userinfo)."""
        return {
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "authorize_url": f"{self.url}/authorize",
            "token_url": f"{self.url}/token",
            "userinfo_url": f"{self.url}/user",
            "emails_url": f"{self.url}/user/emails",
            "scope": "read:user user:email",
            "subject_field": "id",
            "login_field": "login",
            "name_field": "name",
            "avatar_field": "avatar_url",
            "email_verified_field": None,
            **overrides,
        }

    async def start(self) -> None:
        self._server, self.port = await listen(self._serve)

    async def stop(self) -> None:
        await shut(self._server, self._release)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            method, target, headers, body = await read_request(reader)
            path = urlsplit(target).path
            self.hits[path] = self.hits.get(path, 0) + 1
            mode = self.behaviour.get(path)
            if mode == "drop-once":
                del self.behaviour[path]
                return  # close without a byte of response, this once
            if mode == "drop":
                return  # close without a byte of response
            if mode == "hang":
                await self._release.wait()
                return
            if mode == "html500":
                await _respond(writer, 500, b"<html><body><h1>Internal Server Error</h1></body></html>", "text/html")
                return
            status, payload, extra = self._route(method, target, headers, body)
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            await _respond(writer, status, data, "application/json", extra)
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()

    def _route(self, method: str, target: str, headers: dict[str, str], body: bytes) -> tuple[int, Any, dict[str, str]]:
        parts = urlsplit(target)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        if method == "GET" and parts.path == "/authorize":
            return self._authorize(query)
        if method == "POST" and parts.path == "/token":
            form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
            return self._token(headers, form)
        token = headers.get("authorization", "").removeprefix("Bearer ").strip()
        if token not in self.issued:
            return 401, {"message": "Bad credentials"}, {}
        if parts.path == "/user":
            return 200, self.user, {}
        if parts.path == "/user/emails":
            return 200, self.emails, {}
        return 404, {"message": "Not Found"}, {}

    def _authorize(self, q: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        if (
            q.get("client_id") != CLIENT_ID
            or q.get("response_type") != "code"
            or q.get("code_challenge_method") != "S256"
            or not q.get("code_challenge")
        ):
            return 400, {"error": "invalid_request"}, {}
        redirect = q["redirect_uri"]
        if self.deny:
            params = {"error": "access_denied", "error_description": "The user denied access", "state": q["state"]}
        else:
            code = secrets.token_urlsafe(16)
            self.grants[code] = Grant(q["code_challenge"], redirect)
            params = {"code": code, "state": q["state"]}
        return 302, b"", {"Location": f"{redirect}?{urlencode(params)}"}

    def _token(self, headers: dict[str, str], form: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if headers.get("authorization") != expected:
            return 401, {"error": "invalid_client"}, {}
        grant = self.grants.get(form.get("code", ""))
        verifier = form.get("code_verifier", "")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if (
            grant is None
            or grant.used
            or grant.redirect_uri != form.get("redirect_uri")
            or form.get("grant_type") != "authorization_code"
            or challenge != grant.challenge
        ):
            return 400, {"error": "invalid_grant", "error_description": "Bad code or verifier"}, {}
        grant.used = True
        access, refresh = "gho_" + secrets.token_urlsafe(24), "ghr_" + secrets.token_urlsafe(24)
        self.issued[access] = refresh
        return (
            200,
            {
                "access_token": access,
                "token_type": "bearer",
                "expires_in": 28800,
                "refresh_token": refresh,
                "scope": "read:user,user:email",
            },
            {},
        )


async def _respond(
    writer: asyncio.StreamWriter, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None
) -> None:
    reason = {
        200: "OK",
        302: "Found",
        400: "Bad Request",
        401: "Unauthorized",
        404: "Not Found",
        500: "Internal Server Error",
    }.get(status, "Status")
    head = [
        f"HTTP/1.1 {status} {reason}",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
        "Connection: close",
        *(f"{k}: {v}" for k, v in (extra or {}).items()),
    ]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
    await writer.drain()
