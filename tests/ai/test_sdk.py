"""The official openai Python SDK, pointed at Bastion (on a real socket), works unmodified."""

from __future__ import annotations

import openai
import pytest

from tests.ai.fakes import Behaviour

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}]


def _client(base_url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=base_url + "/v1", api_key="user-sdk", max_retries=0)


async def test_sdk_completion(ai_app, upstream, live):
    """client.chat.completions.create returns the answer, finish reason and usage."""
    async with live(ai_app()) as base:
        client = _client(base)
        completion = await client.chat.completions.create(model="gpt", messages=MESSAGES, max_tokens=64)
        await client.close()
    assert completion.choices[0].message.content == "Hello! How can I help you today?"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "fake-model"
    assert completion.usage is not None and completion.usage.total_tokens == 19
    assert upstream.requests[0].json["max_tokens"] == 64


async def test_sdk_stream_with_usage(ai_app, upstream, live):
    """A streamed create yields the text chunk by chunk, then the usage chunk of include_usage."""
    async with live(ai_app()) as base:
        client = _client(base)
        stream = await client.chat.completions.create(
            model="gpt", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        chunks = [chunk async for chunk in stream]
        await client.close()
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello! How can I help you today?"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens == 10 and chunks[-1].usage.completion_tokens == 9


async def test_sdk_lists_models(ai_app, live):
    """client.models.list() reads /v1/models."""
    async with live(ai_app()) as base:
        client = _client(base)
        models = [m.id async for m in client.models.list()]
        await client.close()
    assert "gpt" in models and "openai/gpt-4o" in models


async def test_sdk_sees_gateway_errors_as_its_own_exceptions(ai_app, upstream, live):
    """An upstream rate limit reaches the SDK as an APIStatusError with our code; a broken stream raises."""
    upstream.script(Behaviour(status=429, retry_after="30"), Behaviour(error_event_after=1))
    async with live(ai_app()) as base:
        client = _client(base)
        with pytest.raises(openai.APIStatusError) as refused:
            await client.chat.completions.create(model="gpt", messages=MESSAGES)
        stream = await client.chat.completions.create(model="gpt", messages=MESSAGES, stream=True)
        with pytest.raises(openai.APIError, match="reported an error"):
            async for _ in stream:
                pass
        await client.close()
    assert refused.value.status_code == 503
    assert refused.value.body["code"] == "PROVIDER_RATE_LIMIT"
