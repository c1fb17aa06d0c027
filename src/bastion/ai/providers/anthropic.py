"""The ``anthropic`` adapter: OpenAI-format requests to the Messages API, and its answers and stream
events (message_start, content_block_delta, message_delta, message_stop, ping, error) back.

Translation: ``system``/``developer`` messages become the ``system`` prompt; text and image parts
become content blocks (data: URLs as base64 sources); ``stop`` becomes ``stop_sequences``;
``temperature`` is clamped to Anthropic's 0-1; JSON mode (which the Messages API lacks) becomes an
instruction in the system prompt. Stop reasons map back to OpenAI's finish reasons. The wire format
is spoken over the provider's pooled session, for the reasons given in ``providers/openai.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

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
from bastion.ai.schemas import ChatCompletionRequest, ContentPart
from bastion.ai.settings import ProviderSettings

JSON_INSTRUCTION = "Respond with a single valid JSON object and nothing else."
_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "pause_turn": "stop",
}


class _Block(msgspec.Struct):
    type: str
    text: str = ""


class _Usage(msgspec.Struct):
    input_tokens: int | None = None
    output_tokens: int | None = None


class _Message(msgspec.Struct):
    content: list[_Block] = []
    model: str = ""
    stop_reason: str | None = None
    usage: _Usage | None = None


class _Delta(msgspec.Struct):
    type: str = ""
    text: str = ""
    stop_reason: str | None = None


class _Error(msgspec.Struct):
    type: str = "error"


class _Event(msgspec.Struct):
    type: str
    message: _Message | None = None
    delta: _Delta | None = None
    usage: _Usage | None = None
    error: _Error | None = None


_encode = msgspec.json.Encoder().encode
_decode_message = msgspec.json.Decoder(_Message).decode
_decode_event = msgspec.json.Decoder(_Event).decode


class AnthropicProvider:
    kind = "anthropic"

    def __init__(self, settings: ProviderSettings, sender: Sender) -> None:
        self.sender = sender
        self.streams = settings.streaming
        self.url = settings.url + "/v1/messages"
        self.headers = {
            "content-type": "application/json",
            "accept": "application/json",
            "anthropic-version": settings.anthropic_version,
            **settings.headers,
        }
        if settings.api_key is not None:
            self.headers["x-api-key"] = settings.api_key.get_secret_value()

    async def complete(self, request: ChatCompletionRequest) -> Answer:
        raw = await read_all(await self.sender.post(self.url, _encode(to_messages_api(request)), self.headers))
        try:
            message = _decode_message(raw)
        except msgspec.DecodeError as exc:
            raise UpstreamInvalid("not a message") from exc
        text = "".join(block.text for block in message.content if block.type == "text")
        usage = message.usage or _Usage()
        return Answer(
            text,
            _FINISH.get(message.stop_reason or "", "stop"),
            message.model or request.model or "",
            usage.input_tokens,
            usage.output_tokens,
        )

    async def open_stream(self, request: ChatCompletionRequest) -> HttpStream:
        body = _encode(to_messages_api(request, stream=True))
        headers = {**self.headers, "accept": "text/event-stream"}
        return HttpStream(await self.sender.post(self.url, body, headers), _pieces)


def to_messages_api(request: ChatCompletionRequest, *, stream: bool = False) -> dict[str, Any]:
    """The Messages API body for an OpenAI-format request."""
    system: list[str] = []
    messages: list[dict[str, Any]] = []
    for message in request.messages:
        if message.role in ("system", "developer"):
            system.append(message.text())
            continue
        content: Any = message.content or ""
        if isinstance(content, list):
            content = [_block(part) for part in content]
        messages.append({"role": message.role, "content": content})
    if request.wants_json:
        system.append(JSON_INSTRUCTION)
    body: dict[str, Any] = {
        "model": request.model,
        "messages": messages,
        "max_tokens": request.max_completion_tokens or request.max_tokens,
    }
    if system:
        body["system"] = "\n\n".join(system)
    if request.temperature is not None:
        body["temperature"] = min(request.temperature, 1.0)
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.stop:
        body["stop_sequences"] = [request.stop] if isinstance(request.stop, str) else request.stop
    if request.user:
        body["metadata"] = {"user_id": request.user}
    if stream:
        body["stream"] = True
    return body


def _block(part: ContentPart) -> dict[str, Any]:
    if part.type == "text" or part.image_url is None:
        return {"type": "text", "text": part.text or ""}
    url = part.image_url.url
    if url.startswith("data:"):
        header, _, data = url[5:].partition(",")
        media_type = header.split(";", 1)[0] or "image/png"
        return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}
    return {"type": "image", "source": {"type": "url", "url": url}}


async def _pieces(chunks: AsyncIterator[bytes]) -> AsyncIterator[Piece]:
    async for _event, data in sse_events(chunks):
        try:
            event = _decode_event(data)
        except msgspec.DecodeError as exc:
            raise UpstreamInvalid("not a stream event") from exc
        kind = event.type
        if kind == "content_block_delta" and event.delta is not None and event.delta.text:
            yield Piece(event.delta.text)
        elif kind == "message_start" and event.message is not None and event.message.usage is not None:
            yield Piece(prompt_tokens=event.message.usage.input_tokens)
        elif kind == "message_delta":
            reason = event.delta.stop_reason if event.delta is not None else None
            output = event.usage.output_tokens if event.usage is not None else None
            yield Piece(finish_reason=_FINISH.get(reason or "", "stop"), completion_tokens=output)
        elif kind == "message_stop":
            return
        elif kind == "error":
            error_type = event.error.type if event.error is not None else "error"
            raise UpstreamStreamError(error_type, 503 if error_type == "overloaded_error" else 502)
        # ping, content_block_start and content_block_stop carry nothing the client needs
