"""What every local fake of a vendor's HTTP API shares (GitHub-style OAuth, GoHighLevel, Stripe): a server on a
free loopback port, stopped with any held answers released, and an HTTP/1.1 request read off the raw socket.
The fakes speak raw HTTP rather than through a framework so that they can drop a connection before the first
byte, hang mid-answer or send a vendor's exact bytes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def listen(handler: Handler) -> tuple[asyncio.Server, int]:
    """A server for ``handler`` on 127.0.0.1 and the free port it got."""
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def shut(server: asyncio.AbstractServer | None, release: asyncio.Event) -> None:
    """Release the answers held back ("hang" modes), then close the server."""
    release.set()
    if server is not None:
        server.close()
        await server.wait_closed()


async def read_request(reader: asyncio.StreamReader) -> tuple[str, str, dict[str, str], bytes]:
    """One request: (method, target, lower-cased headers, body of Content-Length bytes)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
    body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
    return method, target, headers, body
