"""What every provider adapter gives the gateway, and the HTTP plumbing the network adapters share.

An adapter turns an OpenAI-format request (already routed: ``model`` is the upstream's model name and
the token caps are applied) into the upstream's wire format and its answer back into an
:class:`Answer`, or, streaming, into :class:`Piece` objects. Opening a stream and reading it are two
steps, so that everything up to the response headers can be retried or fall back, and nothing after.

The network adapters speak HTTP through one pooled aiohttp session per provider (see
:class:`HttpSessions` for why aiohttp rather than httpx here). Failures are raised as the exceptions
below, as ``TimeoutError``, or as aiohttp's connection errors (only before the response started); the
gateway alone decides what is retried, what opens a circuit and what the client sees.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Protocol

from bastion.ai.schemas import ChatCompletionRequest
from bastion.ai.settings import ProviderSettings
from bastion.core.http import retry_after
from bastion.core.observability.propagation import aiohttp_trace_configs

if TYPE_CHECKING:
    # aiohttp is imported with the first network session (see HttpSessions.get): a gateway that only runs
    # the local provider, as the embedded default does, does not carry it (about 4 MB of resident memory).
    import aiohttp

MAX_ERROR_BODY = 65_536
MAX_ANSWER_BYTES = 8 * 1_048_576


class UpstreamStatus(Exception):
    """The upstream answered with an error status (its body is read, bounded, and kept out of messages)."""

    def __init__(self, status: int, retry_after: float | None = None) -> None:
        super().__init__(f"upstream answered HTTP {status}")
        self.status = status
        self.retry_after = retry_after


class UpstreamInvalid(Exception):
    """The upstream's answer is not what its wire format promises (bad JSON, no choices, a huge body)."""


class UpstreamStreamError(Exception):
    """The upstream reported an error inside a stream that had already started (an ``error`` event)."""

    def __init__(self, kind: str, status: int = 502) -> None:
        super().__init__(f"upstream stream error: {kind}")
        self.kind = kind
        self.status = status


class UpstreamBroken(Exception):
    """The connection failed after the upstream had started answering (a drop mid-body or mid-stream)."""


class Answer:
    """A whole answer. Token counts are the upstream's, or None when it gave none."""

    __slots__ = ("completion_tokens", "content", "finish_reason", "model", "prompt_tokens")

    def __init__(
        self,
        content: str,
        finish_reason: str,
        model: str,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
    ) -> None:
        self.content = content
        self.finish_reason = finish_reason
        self.model = model
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = completion_tokens


class Piece:
    """One step of a stream: some text, and/or the finish reason, and/or token counts."""

    __slots__ = ("completion_tokens", "finish_reason", "prompt_tokens", "text")

    def __init__(
        self,
        text: str = "",
        finish_reason: str | None = None,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
    ) -> None:
        self.text = text
        self.finish_reason = finish_reason
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = completion_tokens


class UpstreamStream(Protocol):
    """An opened stream: the upstream has answered 2xx; iterating yields its pieces."""

    def __aiter__(self) -> AsyncIterator[Piece]: ...

    async def aclose(self) -> None: ...


class Provider(Protocol):
    kind: str
    streams: bool
    """False when the upstream cannot stream (the gateway then serves streams from a whole answer)."""

    async def complete(self, request: ChatCompletionRequest) -> Answer: ...

    async def open_stream(self, request: ChatCompletionRequest) -> UpstreamStream: ...


def estimate_tokens(text: str) -> int:
    """A rough token count (about four characters a token) for when an upstream reports none."""
    return len(text) // 4 + 1


class HttpSessions:
    """One pooled aiohttp session per provider, made on first use (a session belongs to the running event
    loop) and closed at shutdown.

    Why aiohttp rather than the official SDKs or httpx: the gateway keeps one pooled client per provider,
    shared by every call to it. The official SDKs cannot share one: the openai SDK now depends on
    ``httpx2`` and does not accept a shared ``httpx`` client. httpx itself was the bottleneck in an
    earlier measurement: httpcore's pool checks every pooled connection on each request (through anyio's
    ``extra()`` lookups), and at 32 concurrent calls those per-request checks were what limited it.
    """

    def __init__(self) -> None:
        self._sessions: dict[str, aiohttp.ClientSession] = {}

    def get(self, name: str, settings: ProviderSettings) -> aiohttp.ClientSession:
        session = self._sessions.get(name)
        if session is None or session.closed:
            import aiohttp

            connector = aiohttp.TCPConnector(
                limit=settings.max_concurrent, limit_per_host=0, keepalive_timeout=30.0, ttl_dns_cache=60
            )
            # No total timeout here: the gateway bounds a whole call itself (streams may run long);
            # connect covers waiting for a pooled connection too, sock_read each silence.
            timeout = aiohttp.ClientTimeout(
                total=None, connect=settings.connect_timeout_seconds, sock_read=settings.read_timeout_seconds
            )
            session = aiohttp.ClientSession(
                connector=connector,
                timeout=timeout,
                trust_env=False,
                raise_for_status=False,
                trace_configs=aiohttp_trace_configs(),  # traceparent to the provider when tracing is on
            )
            self._sessions[name] = session
        return session

    async def close(self) -> None:
        sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            await session.close()


class HttpStream:
    """An :class:`UpstreamStream` over a streamed response and a function that parses its bytes."""

    def __init__(self, response: aiohttp.ClientResponse, parse: PieceParser) -> None:
        self.response = response
        self._parse = parse

    def __aiter__(self) -> AsyncIterator[Piece]:
        return self._parse(body_chunks(self.response))

    async def aclose(self) -> None:
        # Synchronous underneath: drops the connection unless the body was read to the end (then it is
        # already back in the pool), so it completes even in a task that is being cancelled.
        self.response.close()


class PieceParser(Protocol):
    def __call__(self, chunks: AsyncIterator[bytes], /) -> AsyncIterator[Piece]: ...


class Sender:
    """POSTs to one provider through its session (looked up per call: the session is made on first use)."""

    def __init__(self, name: str, settings: ProviderSettings, sessions: HttpSessions) -> None:
        self.name = name
        self.settings = settings
        self.sessions = sessions

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> aiohttp.ClientResponse:
        """The response once its status is 2xx (its body not yet read).

        Any other status raises :class:`UpstreamStatus` after reading (at most 64 KiB of) the error body,
        so that the connection can be reused.
        """
        response = await self.sessions.get(self.name, self.settings).post(url, data=body, headers=headers)
        if response.status < 300:
            return response
        import aiohttp  # loaded already: the session above is aiohttp's

        failure = UpstreamStatus(response.status, retry_after(response.headers))
        try:
            await response.content.read(MAX_ERROR_BODY)
        except (aiohttp.ClientError, TimeoutError) as exc:
            # the status is what matters; a failed drain only costs the connection (closed, not pooled)
            raise failure from exc
        finally:
            response.close()
        raise failure


async def body_chunks(response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    """The body as it arrives; a connection lost midway is :class:`UpstreamBroken` (never retried)."""
    try:
        async for chunk in response.content.iter_any():
            yield chunk
    except TimeoutError:
        raise  # a silence longer than the read timeout: reported as a timeout
    except aiohttp.ClientError as exc:
        raise UpstreamBroken("connection lost mid-answer") from exc


async def read_all(response: aiohttp.ClientResponse) -> bytes:
    """The whole body of a 2xx response, refusing one larger than any chat answer can be."""
    try:
        parts: list[bytes] = []
        size = 0
        async for chunk in body_chunks(response):
            size += len(chunk)
            if size > MAX_ANSWER_BYTES:
                raise UpstreamInvalid("answer too large")
            parts.append(chunk)
        return b"".join(parts)
    finally:
        response.close()


async def sse_events(chunks: AsyncIterator[bytes], max_line: int = 1_048_576) -> AsyncIterator[tuple[bytes, bytes]]:
    """``(event, data)`` of each server-sent event in a byte stream.

    Hand-rolled rather than taken from httpx-sse: that parser works on decoded text lines, and this
    one, on bytes, costs less per chunk; providers use only the ``event:`` and ``data:`` fields, and
    comments (``: ping``) are skipped as the SSE spec says.
    """
    pending = b""
    event = b""
    data: list[bytes] = []
    async for chunk in chunks:
        lines = (pending + chunk).split(b"\n")
        pending = lines.pop()
        if len(pending) > max_line:
            raise UpstreamInvalid("event line too long")
        for raw in lines:
            line = raw[:-1] if raw.endswith(b"\r") else raw
            if not line:
                if data:
                    yield event, b"\n".join(data)
                event, data = b"", []
            elif line.startswith(b"data:"):
                data.append(line[6:] if line.startswith(b"data: ") else line[5:])
            elif line.startswith(b"event:"):
                event = line[6:].strip()
    if data:
        yield event, b"\n".join(data)
