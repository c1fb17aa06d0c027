"""The ``local`` adapter: the embedded default, a development stand-in that answers without any network.

It is not a language model and says so in every answer (and in its model name, ``bastion-local-dev``):
it echoes the last user message, as JSON when JSON was asked for, so that a fresh ``bastion serve``
can run a Spark app or the openai SDK end to end before any provider is configured.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import msgspec

from bastion.ai.providers.base import Answer, Piece, estimate_tokens
from bastion.ai.schemas import ChatCompletionRequest
from bastion.ai.settings import LOCAL_MODEL

NOTICE = (
    "[Bastion local development provider: not a language model. Configure a provider "
    "(BASTION_AI__PROVIDERS, see docs/ai.md) for real answers.]"
)
_ECHO_CHARS = 200


def reply_text(request: ChatCompletionRequest) -> str:
    last = next((m.text() for m in reversed(request.messages) if m.role == "user"), "")
    echo = last[:_ECHO_CHARS] + ("…" if len(last) > _ECHO_CHARS else "")
    if request.wants_json:
        return msgspec.json.encode({"provider": LOCAL_MODEL, "notice": NOTICE, "echo": echo}).decode()
    return f"{NOTICE} You said: {echo}"


class _Pieces:
    """The reply, word by word; the last piece carries the finish reason and the (estimated) usage."""

    def __init__(self, request: ChatCompletionRequest) -> None:
        self.request = request

    async def __aiter__(self) -> AsyncIterator[Piece]:
        text = reply_text(self.request)
        words = text.split(" ")
        for i, word in enumerate(words):
            await asyncio.sleep(0)  # a real stream yields to the loop between pieces; so does this one
            yield Piece(word if i == 0 else " " + word)
        prompt = sum(estimate_tokens(m.text()) for m in self.request.messages)
        yield Piece(finish_reason="stop", prompt_tokens=prompt, completion_tokens=estimate_tokens(text))

    async def aclose(self) -> None:
        return None


class LocalProvider:
    kind = "local"
    streams = True

    async def complete(self, request: ChatCompletionRequest) -> Answer:
        text = reply_text(request)
        prompt = sum(estimate_tokens(m.text()) for m in request.messages)
        return Answer(text, "stop", LOCAL_MODEL, prompt, estimate_tokens(text))

    async def open_stream(self, request: ChatCompletionRequest) -> _Pieces:
        return _Pieces(request)
