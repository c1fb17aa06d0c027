"""The AI gateway's API: the OpenAI chat-completions wire format, and ``/api/chat``.

Requests are validated structurally here (types, ranges); the configurable caps (message count, text
length, prompt length) are checked by the service. Fields the gateway does not know are ignored, as
OpenAI-compatible servers do; ``tools`` is declared only so that it can be refused instead of ignored.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

Role = Literal["system", "developer", "user", "assistant"]
FinishReason = Literal["stop", "length", "content_filter", "tool_calls"]


class ImageUrl(msgspec.Struct, omit_defaults=True):
    url: Annotated[str, Meta(min_length=1)]
    detail: Literal["auto", "low", "high"] | None = None


class ContentPart(msgspec.Struct, omit_defaults=True):
    """One part of a multi-part message: ``{"type": "text", "text"}`` or ``{"type": "image_url", ...}``."""

    type: Literal["text", "image_url"]
    text: str | None = None
    image_url: ImageUrl | None = None


class Message(msgspec.Struct, omit_defaults=True):
    role: Role
    content: str | list[ContentPart] | None = None
    name: Annotated[str, Meta(max_length=64)] | None = None

    def text(self) -> str:
        """The message's text (the text parts joined), without images."""
        if self.content is None or isinstance(self.content, str):
            return self.content or ""
        return "".join(part.text or "" for part in self.content if part.type == "text")


class StreamOptions(msgspec.Struct, omit_defaults=True):
    include_usage: bool = False


class ResponseFormat(msgspec.Struct, omit_defaults=True):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: dict[str, Any] | None = None


class ChatCompletionRequest(msgspec.Struct, omit_defaults=True):
    """``POST /v1/chat/completions`` (and ``/_spark/llm``): the OpenAI request body."""

    messages: Annotated[list[Message], Meta(min_length=1)]
    model: Annotated[str, Meta(min_length=1, max_length=256)] | None = None
    temperature: Annotated[float, Meta(ge=0, le=2)] | None = None
    top_p: Annotated[float, Meta(ge=0, le=1)] | None = None
    max_tokens: Annotated[int, Meta(ge=1)] | None = None
    max_completion_tokens: Annotated[int, Meta(ge=1)] | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    stop: str | Annotated[list[str], Meta(max_length=4)] | None = None
    presence_penalty: Annotated[float, Meta(ge=-2, le=2)] | None = None
    frequency_penalty: Annotated[float, Meta(ge=-2, le=2)] | None = None
    seed: int | None = None
    n: Annotated[int, Meta(ge=1)] | None = None
    response_format: ResponseFormat | None = None
    user: Annotated[str, Meta(max_length=256)] | None = None
    tools: list[Any] | None = None
    tool_choice: Any | None = None

    @property
    def wants_json(self) -> bool:
        return self.response_format is not None and self.response_format.type != "text"


class Usage(msgspec.Struct):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class AssistantMessage(msgspec.Struct):
    content: str
    role: Literal["assistant"] = "assistant"


class Choice(msgspec.Struct):
    message: AssistantMessage
    finish_reason: str
    index: int = 0
    logprobs: None = None


class ChatCompletion(msgspec.Struct):
    """The OpenAI ``chat.completion`` object."""

    id: str
    created: int
    model: str
    choices: list[Choice]
    usage: Usage
    object: Literal["chat.completion"] = "chat.completion"
    system_fingerprint: str | None = None


class Delta(msgspec.Struct, omit_defaults=True):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(msgspec.Struct):
    delta: Delta
    finish_reason: str | None = None
    index: int = 0


class ChatCompletionChunk(msgspec.Struct, omit_defaults=True):
    """One ``chat.completion.chunk`` of a stream (``usage`` only on the final one, with no choices)."""

    id: str
    object: Literal["chat.completion.chunk"]  # no default: omit_defaults would drop it
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None


class ModelCard(msgspec.Struct):
    id: str
    created: int = 0
    object: Literal["model"] = "model"
    owned_by: str = "bastion"


class ModelList(msgspec.Struct):
    data: list[ModelCard]
    object: Literal["list"] = "list"


class ChatRequest(msgspec.Struct):
    """``POST /api/chat``: one prompt, answered whole or streamed."""

    prompt: Annotated[str, Meta(min_length=1)]
    stream: bool = False
    model: Annotated[str, Meta(min_length=1, max_length=256)] | None = None


class ChatResponse(msgspec.Struct):
    content: str
    model: str
    usage: Usage
    request_id: str | None
    finish_reason: str = "stop"
