"""HTTP routes of the AI gateway: thin handlers over :class:`AiService`, and the SSE wire formats.

    POST /v1/chat/completions   OpenAI chat completions, whole or streamed (``stream_options.include_usage``)
    GET  /v1/models             the configured models and aliases
    POST /api/chat              ``{"prompt", "stream", "model"?}`` -> ``{"content", "model", "usage", "request_id"}``
    POST /_spark/llm            a general OpenAI chat body in, an OpenAI chat completion out (never streamed)

While the answer is awaited (a whole answer, or the start of a stream), a watcher on the ASGI receive
channel cancels the upstream call the moment the client disconnects; once streaming, Litestar's own
disconnect listener does the same. Streams end with an error event and ``[DONE]`` when the worker
drains (:func:`bastion.core.streaming.until_shutdown`).
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from typing import Any, Literal, TypeVar, cast

import msgspec
from litestar import MediaType, Response, get, post
from litestar.background_tasks import BackgroundTask
from litestar.di import NamedDependency
from litestar.params import JSONBody
from litestar.response import Stream

from bastion.ai.schemas import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatRequest,
    ChatResponse,
    Choice,
    ChunkChoice,
    Delta,
    ModelCard,
    ModelList,
    Usage,
)
from bastion.ai.service import AiService, Caller, ChatStream, Result
from bastion.core.dependencies import AppRequest
from bastion.core.disconnect import cancel_on_disconnect
from bastion.core.edge.asgi import Receive
from bastion.core.errors import AppError, ShuttingDown
from bastion.core.streaming import sse, until_shutdown

T = TypeVar("T")
DONE = b"data: [DONE]\n\n"
EVENT_STREAM = "text/event-stream"
CHUNK: Literal["chat.completion.chunk"] = "chat.completion.chunk"
SSE_HEADERS = {"cache-control": "no-store", "x-accel-buffering": "no"}
_encode = msgspec.json.Encoder().encode


def caller_of(request: AppRequest, service: AiService) -> Caller:
    # With anonymous use off, an anonymous caller gets 401 (or the refusal its resolver recorded).
    principal = request.principal_or_none if service.settings.allow_anonymous else request.principal
    return Caller(principal.rate_key) if principal is not None else Caller("ip:" + request.context.client)


def _receive(request: AppRequest) -> Receive:
    return cast("Receive", request.receive)


def _completion(result: Result) -> ChatCompletion:
    usage = Usage(result.prompt_tokens, result.completion_tokens, result.prompt_tokens + result.completion_tokens)
    return ChatCompletion(
        id="chatcmpl-" + os.urandom(12).hex(),
        created=int(time.time()),
        model=result.model,
        choices=[Choice(AssistantMessage(result.content), result.finish_reason)],
        usage=usage,
    )


def _data(value: Any) -> bytes:
    """One ``data:`` event (JSON never holds a raw newline, so it is one line)."""
    return b"data: " + _encode(value) + b"\n\n"


def _json(value: msgspec.Struct) -> Response[bytes]:
    return Response(_encode(value), media_type=MediaType.JSON)


def _stream_usage(stream: ChatStream) -> Usage:
    return Usage(stream.prompt_tokens, stream.completion_tokens, stream.prompt_tokens + stream.completion_tokens)


def openai_error_event(error: AppError) -> bytes:
    """An error inside a started OpenAI-format stream (the openai SDK raises ``APIError`` on it)."""
    return sse(
        _encode({"error": {"message": error.detail, "type": error.code.lower(), "code": error.code}}), event="error"
    )


async def openai_events(stream: ChatStream, include_usage: bool) -> AsyncIterator[bytes]:
    chunk_id, created, model = "chatcmpl-" + os.urandom(12).hex(), int(time.time()), stream.model

    def chunk(choices: list[ChunkChoice], usage: Usage | None = None) -> bytes:
        return _data(ChatCompletionChunk(chunk_id, CHUNK, created, model, choices, usage))

    yield chunk([ChunkChoice(Delta(role="assistant", content=""))])  # at once: the upstream has answered
    try:
        async for piece in stream:
            yield chunk([ChunkChoice(Delta(content=piece.text))])
    except AppError as error:
        yield openai_error_event(error)
        yield DONE
        return
    yield chunk([ChunkChoice(Delta(), stream.finish_reason)])
    if include_usage:
        yield chunk([], _stream_usage(stream))
    yield DONE


def chat_error_event(error: AppError, request_id: str | None) -> bytes:
    return sse(_encode({"code": error.code, "detail": error.detail, "request_id": request_id}), event="error")


async def chat_events(stream: ChatStream, request_id: str | None) -> AsyncIterator[bytes]:
    try:
        async for piece in stream:
            yield _data({"content": piece.text})
    except AppError as error:
        yield chat_error_event(error, request_id)
        yield DONE
        return
    yield _data(
        {
            "finish_reason": stream.finish_reason,
            "model": stream.model,
            "usage": _stream_usage(stream),
            "request_id": request_id,
        }
    )
    yield DONE


def _sse_response(service: AiService, stream: ChatStream, events: AsyncIterator[bytes], final: list[bytes]) -> Stream:
    # The background task closes the upstream also when the body never started (the client left, or
    # the worker began draining, before the first chunk): an unstarted generator has no finally to run.
    return Stream(
        until_shutdown(events, service.lifecycle, final=final),
        media_type=EVENT_STREAM,
        headers=SSE_HEADERS,
        background=BackgroundTask(stream.aclose),
    )


_SHUTTING_DOWN = ShuttingDown("The server is shutting down; retry the request.")


# Handlers that answer either JSON or a stream declare the stream's media type: Litestar gives a Stream the
# handler's media type over its own, while a Response keeps its own (so the JSON answers are Responses).
@post("/v1/chat/completions", status_code=200, media_type=EVENT_STREAM)
async def chat_completions(
    request: AppRequest, data: JSONBody[ChatCompletionRequest], ai_service: NamedDependency[AiService]
) -> Response[bytes] | Stream:
    caller = caller_of(request, ai_service)
    if not data.stream:
        result = await cancel_on_disconnect(_receive(request), ai_service.complete(data, caller))
        return _json(_completion(result))
    stream = await cancel_on_disconnect(_receive(request), ai_service.open_stream(data, caller))
    include_usage = data.stream_options is not None and data.stream_options.include_usage
    return _sse_response(
        ai_service, stream, openai_events(stream, include_usage), [openai_error_event(_SHUTTING_DOWN), DONE]
    )


@get("/v1/models", sync_to_thread=False)
def list_models(ai_service: NamedDependency[AiService]) -> ModelList:
    return ModelList([ModelCard(name) for name in ai_service.model_names()])


@post("/api/chat", status_code=200, media_type=EVENT_STREAM)
async def chat(
    request: AppRequest, data: JSONBody[ChatRequest], ai_service: NamedDependency[AiService]
) -> Response[bytes] | Stream:
    caller = caller_of(request, ai_service)
    completion = ai_service.prompt_request(data.prompt, data.model)
    request_id = request.context.request_id
    if data.stream and ai_service.streams(data.model):
        stream = await cancel_on_disconnect(_receive(request), ai_service.open_stream(completion, caller))
        return _sse_response(
            ai_service, stream, chat_events(stream, request_id), [chat_error_event(_SHUTTING_DOWN, request_id), DONE]
        )
    result = await cancel_on_disconnect(_receive(request), ai_service.complete(completion, caller))
    usage = Usage(result.prompt_tokens, result.completion_tokens, result.prompt_tokens + result.completion_tokens)
    return _json(ChatResponse(result.content, result.model, usage, request_id, result.finish_reason))


@post("/_spark/llm", status_code=200)
async def spark_llm(
    request: AppRequest, data: JSONBody[ChatCompletionRequest], ai_service: NamedDependency[AiService]
) -> ChatCompletion:
    caller = caller_of(request, ai_service)
    work = ai_service.complete(data, caller, message_chars=ai_service.settings.spark_prompt_chars)
    return _completion(await cancel_on_disconnect(_receive(request), work))


route_handlers = [chat_completions, list_models, chat, spark_llm]
