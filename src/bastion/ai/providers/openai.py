"""The ``openai`` adapter: OpenAI and every OpenAI-compatible server (Groq, GitHub Models, Ollama, vLLM,
llama.cpp), chosen by base URL.

It speaks the wire format itself, over the provider's pooled session (see ``HttpSessions`` in
``base.py``), rather than through the official SDK, which brings its own client (``httpx2``, with no
way to share an ``httpx`` pool) and validates every answer with pydantic. Streams always ask for
``stream_options.include_usage`` so that token budgets count real usage; the gateway drops that chunk
when the client did not ask for it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec

from bastion.ai.providers.base import (
    Answer,
    HttpStream,
    Piece,
    Sender,
    UpstreamInvalid,
    UpstreamStreamError,
    read_all,
    sse_events,
)
from bastion.ai.schemas import ChatCompletionRequest, StreamOptions
from bastion.ai.settings import ProviderSettings


class _Message(msgspec.Struct):
    content: str | None = None
    refusal: str | None = None


class _Choice(msgspec.Struct):
    message: _Message
    finish_reason: str | None = None


class _Usage(msgspec.Struct):
    prompt_tokens: int = 0
    completion_tokens: int = 0


class _Completion(msgspec.Struct):
    choices: list[_Choice] = []
    model: str = ""
    usage: _Usage | None = None


class _Delta(msgspec.Struct):
    content: str | None = None
    refusal: str | None = None


class _ChunkChoice(msgspec.Struct):
    delta: _Delta = msgspec.field(default_factory=_Delta)
    finish_reason: str | None = None


class _Chunk(msgspec.Struct):
    choices: list[_ChunkChoice] = []
    usage: _Usage | None = None
    error: dict[str, object] | None = None


_encode = msgspec.json.Encoder().encode
_decode_completion = msgspec.json.Decoder(_Completion).decode
_decode_chunk = msgspec.json.Decoder(_Chunk).decode
_INCLUDE_USAGE = StreamOptions(include_usage=True)


class OpenAIProvider:
    kind = "openai"

    def __init__(self, settings: ProviderSettings, sender: Sender) -> None:
        self.sender = sender
        self.streams = settings.streaming
        self.url = settings.url + "/chat/completions"
        self.headers = {"content-type": "application/json", "accept": "application/json", **settings.headers}
        if settings.api_key is not None:
            self.headers["authorization"] = "Bearer " + settings.api_key.get_secret_value()

    async def complete(self, request: ChatCompletionRequest) -> Answer:
        body = _encode(msgspec.structs.replace(request, stream=None, stream_options=None))
        raw = await read_all(await self.sender.post(self.url, body, self.headers))
        try:
            answer = _decode_completion(raw)
        except msgspec.DecodeError as exc:
            raise UpstreamInvalid("not a chat completion") from exc
        if not answer.choices:
            raise UpstreamInvalid("no choices")
        choice = answer.choices[0]
        usage = answer.usage
        return Answer(
            choice.message.content or choice.message.refusal or "",
            choice.finish_reason or "stop",
            answer.model or request.model or "",
            usage.prompt_tokens if usage else None,
            usage.completion_tokens if usage else None,
        )

    async def open_stream(self, request: ChatCompletionRequest) -> HttpStream:
        body = _encode(msgspec.structs.replace(request, stream=True, stream_options=_INCLUDE_USAGE))
        headers = {**self.headers, "accept": "text/event-stream"}
        return HttpStream(await self.sender.post(self.url, body, headers), _pieces)


async def _pieces(chunks: AsyncIterator[bytes]) -> AsyncIterator[Piece]:
    async for _event, data in sse_events(chunks):
        if data.startswith(b"[DONE]"):
            return
        try:
            chunk = _decode_chunk(data)
        except msgspec.DecodeError as exc:
            raise UpstreamInvalid("not a chat completion chunk") from exc
        if chunk.error is not None:
            raise UpstreamStreamError(str(chunk.error.get("type") or "error"))
        usage = chunk.usage
        if chunk.choices:
            choice = chunk.choices[0]
            yield Piece(
                choice.delta.content or choice.delta.refusal or "",
                choice.finish_reason,
                usage.prompt_tokens if usage else None,
                usage.completion_tokens if usage else None,
            )
        elif usage is not None:
            yield Piece(prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens)
