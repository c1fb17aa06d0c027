"""Fake LLM upstreams on real sockets: an OpenAI- and Anthropic-compatible server whose behaviour each test
scripts (errors, Retry-After, slow first byte, stalls and drops mid-stream), recording what it received
and whether the client went away while it was answering; and a server that drops every connection.

    upstream.script(Behaviour(status=429, retry_after="7"), Behaviour())   # first request 429, then OK
    ...
    assert upstream.requests[0].json["max_tokens"] == 1000
    await upstream.wait_cancelled()                                         # the client hung up

Both wire formats are served from one app: ``POST /v1/chat/completions`` (OpenAI) and ``POST /v1/messages``
(Anthropic Messages API), streamed (SSE) or not, with each provider's own error bodies.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

import uvicorn

from tests.conftest import free_port

DEFAULT_WORDS = ["Hello", "!", " How", " can", " I", " help", " you", " today", "?"]


@dataclass
class Behaviour:
    """How the fake answers one request."""

    status: int = 200
    retry_after: str | None = None
    words: list[str] = field(default_factory=lambda: list(DEFAULT_WORDS))
    first_byte_delay: float = 0.0
    """Seconds before the response headers (a slow first byte)."""
    chunk_delay: float = 0.0
    stall_after: int | None = None
    """Streams: send this many pieces, then go silent forever."""
    drop_after: int | None = None
    """Streams: send this many pieces, then drop the connection."""
    error_event_after: int | None = None
    """Streams: send this many pieces, then an in-stream error event."""
    usage: tuple[int, int] = (10, 9)
    finish: str = "stop"


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    json: dict[str, Any]
    at: float
    cancelled_at: float | None = None
    done: bool = False


class StreamAbort(Exception):
    """Raised inside the fake to make the server drop the connection mid-response."""


class FakeUpstream:
    def __init__(self) -> None:
        self.requests: list[Received] = []
        self._script: deque[Behaviour] = deque()
        self.default = Behaviour()
        self.default_for: dict[str, Behaviour] = {}
        """Per path (``/v1/messages``), the behaviour used instead of ``default`` once the script is empty."""
        self._arrived = asyncio.Condition()
        self._cancelled = asyncio.Event()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def script(self, *behaviours: Behaviour) -> None:
        """Answer the next requests with these behaviours, in order; then with ``default``."""
        self._script.extend(behaviours)

    async def wait_requests(self, count: int, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout), self._arrived:
            await self._arrived.wait_for(lambda: len(self.requests) >= count)

    async def wait_cancelled(self, timeout: float = 5.0) -> Received:
        async with asyncio.timeout(timeout):
            await self._cancelled.wait()
        return next(r for r in self.requests if r.cancelled_at is not None)

    # -- the ASGI app ----------------------------------------------------------------------------------

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        record = Received(
            scope["path"],
            {k.decode(): v.decode() for k, v in scope["headers"]},
            json.loads(body or b"{}"),
            time.monotonic(),
        )
        async with self._arrived:
            self.requests.append(record)
            self._arrived.notify_all()
        behaviour = self._script.popleft() if self._script else self.default_for.get(record.path, self.default)
        responder = asyncio.current_task()
        watcher = asyncio.ensure_future(self._watch(receive, record, responder))
        try:
            await self._respond(record, behaviour, send)
        except asyncio.CancelledError:
            return  # the client went away: a real upstream stops generating
        finally:
            watcher.cancel()

    async def _watch(self, receive: Any, record: Received, responder: asyncio.Task[Any] | None) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        if not record.done:
            record.cancelled_at = time.monotonic()
            self._cancelled.set()
            if responder is not None:
                responder.cancel()

    async def _respond(self, record: Received, b: Behaviour, send: Any) -> None:
        anthropic = record.path.endswith("/messages")
        if b.first_byte_delay:
            await asyncio.sleep(b.first_byte_delay)
        if b.status != 200:
            headers = [(b"content-type", b"application/json")]
            if b.retry_after is not None:
                headers.append((b"retry-after", b.retry_after.encode()))
            await self._send_whole(record, send, b.status, headers, _error_body(anthropic, b.status))
            return
        if not record.json.get("stream"):
            answer = _anthropic_message if anthropic else _openai_completion
            await self._send_whole(
                record, send, 200, [(b"content-type", b"application/json")], json.dumps(answer(record.json, b)).encode()
            )
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")],
            }
        )
        events = _anthropic_events(record.json, b) if anthropic else _openai_events(record.json, b)
        pieces = 0
        async for event, is_piece in events:
            if is_piece:
                if b.stall_after is not None and pieces >= b.stall_after:
                    await asyncio.Event().wait()
                if b.drop_after is not None and pieces >= b.drop_after:
                    raise StreamAbort("dropping the connection")
                if b.error_event_after is not None and pieces >= b.error_event_after:
                    error = _stream_error(anthropic)
                    record.done = True
                    await send({"type": "http.response.body", "body": error, "more_body": False})
                    return
                pieces += 1
                if b.chunk_delay:
                    await asyncio.sleep(b.chunk_delay)
            await send({"type": "http.response.body", "body": event, "more_body": True})
        record.done = True
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    @staticmethod
    async def _send_whole(
        record: Received, send: Any, status: int, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [*headers, (b"content-length", str(len(body)).encode())],
            }
        )
        record.done = True
        await send({"type": "http.response.body", "body": body})


def _error_body(anthropic: bool, status: int) -> bytes:
    kinds = {
        400: "invalid_request_error",
        401: "authentication_error",
        403: "permission_error",
        404: "not_found_error",
        429: "rate_limit_error",
        529: "overloaded_error",
    }
    kind = kinds.get(status, "api_error")
    if anthropic:
        return json.dumps(
            {"type": "error", "error": {"type": kind, "message": "upstream says: sk-ant-LEAKED"}}
        ).encode()
    return json.dumps(
        {"error": {"message": "Incorrect API key provided: sk-LEAKEDKEY123", "type": kind, "code": kind}}
    ).encode()


def _stream_error(anthropic: bool) -> bytes:
    if anthropic:
        return b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
    return b'data: {"error":{"message":"upstream broke","type":"server_error"}}\n\n'


def _openai_completion(request: dict[str, Any], b: Behaviour) -> dict[str, Any]:
    prompt, completion = b.usage
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 1,
        "model": request.get("model"),
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "".join(b.words)}, "finish_reason": b.finish}
        ],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
    }


def _anthropic_message(request: dict[str, Any], b: Behaviour) -> dict[str, Any]:
    prompt, completion = b.usage
    reason = {"stop": "end_turn", "length": "max_tokens"}.get(b.finish, "end_turn")
    return {
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "model": request.get("model"),
        "content": [{"type": "text", "text": "".join(b.words)}],
        "stop_reason": reason,
        "stop_sequence": None,
        "usage": {"input_tokens": prompt, "output_tokens": completion},
    }


def _sse(data: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + (data if isinstance(data, bytes) else json.dumps(data).encode()) + b"\n\n"


async def _openai_events(request: dict[str, Any], b: Behaviour) -> AsyncIterator[tuple[bytes, bool]]:
    base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1, "model": request.get("model")}
    yield (
        _sse({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}),
        False,
    )
    for word in b.words:
        yield _sse({**base, "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}]}), True
    yield _sse({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": b.finish}]}), False
    if (request.get("stream_options") or {}).get("include_usage"):
        prompt, completion = b.usage
        yield (
            _sse(
                {
                    **base,
                    "choices": [],
                    "usage": {
                        "prompt_tokens": prompt,
                        "completion_tokens": completion,
                        "total_tokens": prompt + completion,
                    },
                }
            ),
            False,
        )
    yield b"data: [DONE]\n\n", False


async def _anthropic_events(request: dict[str, Any], b: Behaviour) -> AsyncIterator[tuple[bytes, bool]]:
    prompt, completion = b.usage
    yield (
        _sse(
            {
                "type": "message_start",
                "message": {
                    "id": "msg_fake",
                    "type": "message",
                    "role": "assistant",
                    "model": request.get("model"),
                    "content": [],
                    "stop_reason": None,
                    "usage": {"input_tokens": prompt, "output_tokens": 1},
                },
            },
            "message_start",
        ),
        False,
    )
    yield (
        _sse(
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
            "content_block_start",
        ),
        False,
    )
    yield _sse({"type": "ping"}, "ping"), False
    for word in b.words:
        yield (
            _sse(
                {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": word}},
                "content_block_delta",
            ),
            True,
        )
    yield _sse({"type": "content_block_stop", "index": 0}, "content_block_stop"), False
    reason = {"stop": "end_turn", "length": "max_tokens"}.get(b.finish, "end_turn")
    yield (
        _sse(
            {
                "type": "message_delta",
                "delta": {"stop_reason": reason, "stop_sequence": None},
                "usage": {"output_tokens": completion},
            },
            "message_delta",
        ),
        False,
    )
    yield _sse({"type": "message_stop"}, "message_stop"), False


@contextlib.asynccontextmanager
async def run_server(app: Any, *, lifespan: Literal["auto", "on", "off"] = "off") -> AsyncIterator[int]:
    """Serve ``app`` with uvicorn on a free loopback port in this event loop; yields the port."""
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="critical",
        lifespan=lifespan,
        access_log=False,
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]  # pytest owns the signals
    task = asyncio.ensure_future(server.serve())
    try:
        async with asyncio.timeout(30):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.01)
        yield port
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task


class DropServer:
    """Accepts connections and closes them at once: an upstream that drops before answering."""

    def __init__(self) -> None:
        self.connections = 0
        self.port = 0
        self._server: asyncio.AbstractServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> DropServer:
        self._server = await asyncio.start_server(self._drop, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _drop(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        with contextlib.suppress(ConnectionError):
            await reader.read(1)  # the request has started arriving
        writer.transport.abort()
