"""A local WhatsApp Cloud API (Meta Graph) that speaks Meta's wire format, for the messaging tests and bench.

    fake = FakeWhatsApp()
    await fake.start()                          # fake.base_url, fake.phone_number_id, fake.token
    fake.script("+15551230000", Fail(131056), Fail(131056))   # the next two sends to that number fail
    fake.script("+15551230001", Slow(3.0))                    # answers after 3 s
    fake.script("+15551230002", Drop())                       # closes the connection without an answer
    ...
    fake.received                               # every message it accepted: (to, payload, at, wamid)

``POST /{version}/{phone_number_id}/messages`` with ``Authorization: Bearer <token>`` answers
``{"messaging_product": "whatsapp", "contacts": [{"input", "wa_id"}], "messages": [{"id": "wamid.…"}]}``; an
error is Meta's envelope ``{"error": {"message", "type", "code", "error_data": {"messaging_product",
"details"}, "error_subcode", "fbtrace_id"}}`` with the HTTP status Meta's tables give (400 by default, 429 for
the throttling codes as YCloud shows). A wrong token is 401 with code 190; a body that is not a valid message
is 400 with code 100. Webhook helpers build Meta's status and inbound payloads and sign them.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

MESSAGES = {
    4: "(#4) Application request limit reached",
    80007: "(#80007) Rate limit issues",
    130429: "(#130429) Rate limit hit",
    131056: "(#131056) (Business Account, Consumer Account) pair rate limit hit",
    131048: "(#131048) Spam rate limit hit",
    131049: "(#131049) This message was not delivered to maintain healthy ecosystem engagement.",
    100: "(#100) Invalid parameter",
    131026: "(#131026) Message Undeliverable",
    131047: "(#131047) Re-engagement message",
    190: "Error validating access token: Session has expired",
    368: "Temporarily blocked for policies violations",
    131000: "(#131000) Something went wrong",
    2: "Service temporarily unavailable",
}
THROTTLE_STATUS = {4: 429, 80007: 429, 130429: 429, 131056: 429}


@dataclass(frozen=True)
class Fail:
    code: int
    status: int | None = None


@dataclass(frozen=True)
class Slow:
    seconds: float


@dataclass(frozen=True)
class Drop:
    """Close the connection after reading the request, without an answer."""


@dataclass(frozen=True)
class ServerError:
    """A 500 or 502 with an HTML body, as a load balancer in front of the API answers."""

    status: int = 502


@dataclass
class Received:
    to: str
    payload: dict[str, Any]
    at: float
    wamid: str
    traceparent: str | None = None
    """The W3C ``traceparent`` header the call carried (tracing on)."""


@dataclass
class FakeWhatsApp:
    token: str = "test-token"
    phone_number_id: str = "106540352242922"
    version: str = "v21.0"
    app_secret: str = "test-app-secret-0123456789"
    received: list[Received] = field(default_factory=list)
    calls: int = 0
    port: int = 0

    def __post_init__(self) -> None:
        self._scripts: dict[str, deque[Any]] = defaultdict(deque)
        self._serial = itertools.count(1)
        self._runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def settings(self) -> dict[str, Any]:
        """The ``messaging.whatsapp`` settings that point Bastion at this fake."""
        return {
            "base_url": self.base_url,
            "api_version": self.version,
            "phone_number_id": self.phone_number_id,
            "access_token": self.token,
            "app_secret": self.app_secret,
            "verify_token": "verify-me",
        }

    def script(self, to: str, *behaviours: Any) -> None:
        """The next sends to ``to`` behave so, in order; after them, sends succeed."""
        self._scripts[to].extend(behaviours)

    def sent_to(self, to: str) -> list[Received]:
        return [r for r in self.received if r.to == to]

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{version}/{number}/messages", self._messages)
        app.router.add_get("/_stats", self._stats)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _stats(self, _request: web.Request) -> web.Response:
        """What the benchmark reads: how many were received (and distinct recipients), first and last time."""
        times = [r.at for r in self.received]
        return web.json_response(
            {
                "received": len(self.received),
                "distinct": len({(r.to, json.dumps(r.payload, sort_keys=True)) for r in self.received}),
                "first": min(times, default=None),
                "last": max(times, default=None),
            }
        )

    async def _messages(self, request: web.Request) -> web.StreamResponse:
        self.calls += 1
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return error(190, 401)
        if request.match_info["number"] != self.phone_number_id or request.match_info["version"] != self.version:
            return error(100, 400, "Unsupported post request: object does not exist")
        try:
            payload = json.loads(await request.read())
        except ValueError:
            return error(100, 400, "Invalid JSON")
        problem = validate(payload)
        if problem:
            return error(100, 400, problem)
        to = payload["to"]
        script = self._scripts.get(to)
        behaviour = script.popleft() if script else None
        if isinstance(behaviour, Drop):
            assert request.transport is not None
            request.transport.abort()
            await asyncio.sleep(0.01)
            raise ConnectionResetError("dropped on purpose")
        if isinstance(behaviour, Fail):
            return error(behaviour.code, behaviour.status or THROTTLE_STATUS.get(behaviour.code, 400))
        if isinstance(behaviour, ServerError):
            return web.Response(status=behaviour.status, text="<html>Bad Gateway</html>", content_type="text/html")
        if isinstance(behaviour, Slow):
            await asyncio.sleep(behaviour.seconds)
        wamid = f"wamid.HBgL{next(self._serial):012d}"
        self.received.append(Received(to, payload, time.time(), wamid, request.headers.get("traceparent")))
        return web.json_response(
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": to, "wa_id": to.lstrip("+")}],
                "messages": [{"id": wamid}],
            }
        )


def validate(payload: Any) -> str | None:
    if not isinstance(payload, dict) or payload.get("messaging_product") != "whatsapp":
        return "messaging_product must be whatsapp"
    if not isinstance(payload.get("to"), str):
        return "to is required"
    kind = payload.get("type")
    if kind == "text":
        body = (payload.get("text") or {}).get("body")
        if not isinstance(body, str) or not body or len(body) > 4096:
            return "text.body must be 1-4096 characters"
        return None
    if kind == "template":
        template = payload.get("template") or {}
        if not template.get("name") or not (template.get("language") or {}).get("code"):
            return "template name and language.code are required"
        return None
    return f"unsupported type {kind!r}"


def error(code: int, status: int, message: str | None = None) -> web.Response:
    return web.json_response(
        {
            "error": {
                "message": message or MESSAGES.get(code, "An error occurred"),
                "type": "OAuthException",
                "code": code,
                "error_data": {"messaging_product": "whatsapp", "details": message or MESSAGES.get(code, "")},
                "error_subcode": 2494010 if code == 131026 else None,
                "fbtrace_id": "AbCdEfGhIjKlMnOp",
            }
        },
        status=status,
    )


# -- webhooks, as Meta sends them ---------------------------------------------------------------------------


def sign(body: bytes, secret: str) -> str:
    """The ``X-Hub-Signature-256`` header of ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _envelope(value: dict[str, Any], phone_number_id: str) -> dict[str, Any]:
    value = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550001111", "phone_number_id": phone_number_id},
        **value,
    }
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"value": value, "field": "messages"}]}],
    }


def status_event(
    wamid: str, status: str, to: str, timestamp: int, *, code: int | None = None, phone_number_id: str = "1065"
) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": wamid, "status": status, "timestamp": str(timestamp), "recipient_id": to.lstrip("+")}
    if code is not None:
        entry["errors"] = [
            {
                "code": code,
                "title": MESSAGES.get(code, "error"),
                "message": MESSAGES.get(code, "error"),
                "error_data": {"details": MESSAGES.get(code, "")},
            }
        ]
    return _envelope({"statuses": [entry]}, phone_number_id)


def inbound_event(
    wamid: str, from_phone: str, text: str, timestamp: int, *, phone_number_id: str = "1065"
) -> dict[str, Any]:
    return _envelope(
        {
            "contacts": [{"profile": {"name": "Asha"}, "wa_id": from_phone.lstrip("+")}],
            "messages": [
                {
                    "from": from_phone.lstrip("+"),
                    "id": wamid,
                    "timestamp": str(timestamp),
                    "type": "text",
                    "text": {"body": text},
                }
            ],
        },
        phone_number_id,
    )


async def _serve(port: int) -> None:
    fake = FakeWhatsApp(port=port)
    await fake.start()
    print(f"fake whatsapp on {fake.base_url}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":  # python -m tests.messaging.fake_whatsapp PORT (for bench/messaging.py)
    import sys

    asyncio.run(_serve(int(sys.argv[1])))
