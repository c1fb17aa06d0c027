"""ASGI types shared by the edge middleware, the per-request context, and a problem responder."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bastion.core import errors

if TYPE_CHECKING:
    from bastion.core.principal import Principal

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CONTEXT_KEY = "bastion"


@dataclass(frozen=True, slots=True)
class RoutePolicy:
    """What the edge applies to a group of routes: its rate-limit tier (None: not limited), the largest
    body it accepts, the media types its body may have (empty: any), and the longest URL it accepts
    (None: the global limit; raised, e.g., where data such as a percent-encoded key travels in the path)."""

    tier: str | None = "general"
    max_body_bytes: int | None = None
    media_types: tuple[str, ...] = ("application/json",)
    max_url_length: int | None = None


class RequestContext:
    """Per-request facts gathered once at the edge and read by the later stages and the app.

    Lives in ``scope["bastion"]``; the request headers the edge needs are read in one pass by the
    context stage, so later stages do not scan the header list again. (A plain slotted class: this
    is built for every request, and a dataclass with default factories costs several times more.)
    """

    __slots__ = (
        "authorization",
        "client",
        "content_length",
        "content_type",
        "cookie",
        "header_bytes",
        "host",
        "origin",
        "peer",
        "policy",
        "principal",
        "request_id",
        "response_bytes",
        "response_headers",
        "start",
        "status",
    )

    def __init__(
        self,
        request_id: str,
        start: float,
        client: str,
        peer: str,
        host: bytes = b"",
        origin: bytes | None = None,
        content_type: bytes | None = None,
        content_length: int | None = None,
        authorization: bytes | None = None,
        cookie: bytes | None = None,
        header_bytes: int = 0,
    ) -> None:
        self.request_id = request_id
        self.start = start
        self.client = client
        self.peer = peer
        self.host = host
        self.origin = origin
        self.content_type = content_type
        self.content_length = content_length
        self.authorization = authorization
        self.cookie = cookie
        self.header_bytes = header_bytes
        self.policy: RoutePolicy = _DEFAULT_POLICY
        self.principal: Principal | None = None
        self.status = 0
        self.response_bytes = 0
        self.response_headers: list[tuple[bytes, bytes]] = []
        """Headers a stage wants on the response (rate limits, CORS); the context stage adds them when
        the response starts, so the stages need no ``send`` wrappers of their own."""


_DEFAULT_POLICY = RoutePolicy()


def context(scope: Scope) -> RequestContext | None:
    ctx: RequestContext | None = scope.get(CONTEXT_KEY)
    return ctx


async def send_problem(send: Send, error: errors.AppError, request_id: str | None) -> None:
    """Answer with ``error`` as problem+json (the response must not have started)."""
    body = errors.render(error, request_id)
    await send(
        {
            "type": "http.response.start",
            "status": error.status,
            "headers": errors.headers_list(len(body), error.headers),
        }
    )
    await send({"type": "http.response.body", "body": body})


async def drain_body(receive: Receive, limit: int = 65_536) -> None:
    """Read and discard up to ``limit`` bytes of a request body we are rejecting.

    Some clients do not read a response until they have sent their body; a bounded drain lets a
    small rejected body finish cleanly without letting a large one cost us its full size.
    """
    seen = 0
    while seen < limit:
        message = await receive()
        if message["type"] != "http.request":
            return
        seen += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


def find_header(scope: Scope, name: bytes) -> bytes | None:
    """The first request header called ``name`` (lower-case), or None."""
    for key, value in scope.get("headers", ()):
        if key == name:
            found: bytes = value
            return found
    return None
