"""``/api/chat`` (seed 001), ``/_spark/llm`` (seed 000), the local development provider, and the Anthropic
translation, over the fake upstream."""

from __future__ import annotations

import json

from tests.ai.conftest import AUTH, CHAT, providers_for, sse_data
from tests.ai.fakes import Behaviour
from tests.conftest import serve

SPARK_BODY = {
    "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Name a colour"},
    ],
    "temperature": 1.0,
    "top_p": 1.0,
    "max_tokens": 1000,
    "model": "openai/gpt-4o",
    "response_format": {"type": "text"},
}


async def test_chat_answers_content_model_usage_and_request_id(ai_app, upstream):
    """POST /api/chat {prompt} returns {content, model, usage, request_id}."""
    async with serve(ai_app()) as http:
        response = await http.post("/api/chat", json={"prompt": "Hello"}, headers=AUTH)
    assert response.status_code == 200
    body = response.json()
    assert body["content"] == "Hello! How can I help you today?"
    assert body["model"] == "fake-model"
    assert body["usage"]["total_tokens"] == 19
    assert body["request_id"] == response.headers["x-request-id"]
    assert upstream.requests[0].json["messages"] == [{"role": "user", "content": "Hello"}]


async def test_chat_streams_content_events(ai_app, upstream):
    """With stream: true, /api/chat is SSE: content events, a closing event with usage, then [DONE]."""
    async with serve(ai_app()) as http:
        response = await http.post("/api/chat", json={"prompt": "Hello", "stream": True}, headers=AUTH)
    assert response.headers["content-type"].startswith("text/event-stream")
    data = sse_data(response.text)
    assert data[-1] == "[DONE]"
    events = [json.loads(d) for d in data[:-1]]
    assert "".join(e.get("content", "") for e in events) == "Hello! How can I help you today?"
    assert events[-1]["finish_reason"] == "stop" and events[-1]["usage"]["total_tokens"] == 19
    assert events[-1]["request_id"] == response.headers["x-request-id"]


async def test_chat_answers_whole_when_the_provider_cannot_stream(ai_app, upstream):
    """A provider configured as non-streaming answers a stream request with the whole JSON answer."""
    app = ai_app(providers=providers_for(upstream, streaming=False))
    async with serve(app) as http:
        response = await http.post("/api/chat", json={"prompt": "Hello", "stream": True}, headers=AUTH)
    assert response.headers["content-type"] == "application/json"
    assert response.json()["content"] == "Hello! How can I help you today?"
    assert "stream" not in upstream.requests[0].json


async def test_openai_stream_from_a_provider_that_cannot_stream(ai_app, upstream):
    """/v1 streams served from a non-streaming provider still follow the chunk format."""
    app = ai_app(providers=providers_for(upstream, streaming=False))
    async with serve(app) as http:
        response = await http.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=AUTH)
    chunks = [json.loads(d) for d in sse_data(response.text)[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "Hello! How can I help you today?"


async def test_chat_prompt_over_2000_characters_is_refused(ai_app, upstream):
    """A /api/chat prompt over 2,000 characters is 422 REQUEST_TOO_LARGE; a blank one is 422 too."""
    async with serve(ai_app()) as http:
        long = await http.post("/api/chat", json={"prompt": "x" * 2001}, headers=AUTH)
        blank = await http.post("/api/chat", json={"prompt": "   "}, headers=AUTH)
        fits = await http.post("/api/chat", json={"prompt": "x" * 2000}, headers=AUTH)
    assert long.status_code == 422 and long.json()["code"] == "REQUEST_TOO_LARGE"
    assert blank.status_code == 422
    assert fits.status_code == 200


async def test_spark_llm_answers_the_spark_clients_body(ai_app, upstream):
    """The Spark client's llm() body (default model openai/gpt-4o) gets a chat completion back."""
    async with serve(ai_app()) as http:
        response = await http.post("/_spark/llm", json=SPARK_BODY, headers=AUTH)
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == "Hello! How can I help you today?"
    sent = upstream.requests[0].json
    assert sent["model"] == "fake-model" and sent["response_format"] == {"type": "text"}
    assert sent["temperature"] == 1.0 and sent["top_p"] == 1.0


async def test_spark_llm_takes_image_parts(ai_app, upstream):
    """Apps post general OpenAI bodies to /_spark/llm, image_url parts included."""
    body = {
        **SPARK_BODY,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                ],
            }
        ],
    }
    async with serve(ai_app()) as http:
        response = await http.post("/_spark/llm", json=body, headers=AUTH)
    assert response.status_code == 200
    assert upstream.requests[0].json["messages"] == body["messages"]


async def test_spark_llm_message_over_10000_characters_is_refused(ai_app, upstream):
    """A /_spark/llm message over 10,000 characters is 422 REQUEST_TOO_LARGE (a /v1 one is not)."""
    long = {**SPARK_BODY, "messages": [{"role": "user", "content": "x" * 10_001}]}
    async with serve(ai_app()) as http:
        refused = await http.post("/_spark/llm", json=long, headers=AUTH)
        served = await http.post("/v1/chat/completions", json={**long, "model": "gpt"}, headers=AUTH)
    assert refused.status_code == 422 and refused.json()["code"] == "REQUEST_TOO_LARGE"
    assert served.status_code == 200


async def test_spark_llm_never_streams(ai_app, upstream):
    """/_spark/llm answers a whole completion even if the body says stream (the Spark client cannot read SSE)."""
    async with serve(ai_app()) as http:
        response = await http.post("/_spark/llm", json={**SPARK_BODY, "stream": True}, headers=AUTH)
    assert response.headers["content-type"] == "application/json"
    assert response.json()["object"] == "chat.completion"


async def test_local_provider_answers_without_network(make_app):
    """On the embedded default (no provider configured) the local provider answers, labelled as such."""
    from tests.support import principal_module

    async with serve(make_app(extra=(principal_module,))) as http:
        response = await http.post("/_spark/llm", json=SPARK_BODY, headers=AUTH)
        streamed = await http.post("/api/chat", json={"prompt": "ping", "stream": True}, headers=AUTH)
    assert response.status_code == 200
    body = response.json()
    assert body["model"] == "bastion-local-dev"
    content = body["choices"][0]["message"]["content"]
    assert "local development provider" in content and "Name a colour" in content
    text = "".join(json.loads(d).get("content", "") for d in sse_data(streamed.text)[:-1])
    assert "local development provider" in text and text.endswith("ping")


async def test_local_provider_answers_json_in_json_mode(make_app):
    """In JSON mode the local provider's answer parses as JSON (Spark apps JSON.parse it)."""
    from tests.support import principal_module

    body = {**SPARK_BODY, "response_format": {"type": "json_object"}}
    async with serve(make_app(extra=(principal_module,))) as http:
        response = await http.post("/_spark/llm", json=body, headers=AUTH)
    answer = json.loads(response.json()["choices"][0]["message"]["content"])
    assert answer["provider"] == "bastion-local-dev" and answer["echo"] == "Name a colour"


async def test_anthropic_request_is_translated(ai_app, upstream):
    """System messages become `system`, stop becomes stop_sequences, temperature is clamped, and the key
    travels as x-api-key with an anthropic-version."""
    body = {
        "model": "claude",
        "temperature": 1.7,
        "stop": "END",
        "max_tokens": 300,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": "Again"},
        ],
    }
    async with serve(ai_app()) as http:
        response = await http.post("/v1/chat/completions", json=body, headers=AUTH)
    assert response.status_code == 200
    sent = upstream.requests[0]
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == "sk-ant-test-upstream-key"
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.json == {
        "model": "claude-test",
        "system": "Be brief.",
        "max_tokens": 300,
        "temperature": 1.0,
        "stop_sequences": ["END"],
        "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": "Again"},
        ],
    }


async def test_anthropic_answer_is_an_openai_completion(ai_app, upstream):
    """A Messages API answer comes back as a chat.completion: text, finish reason and usage mapped."""
    upstream.default = Behaviour(finish="length", usage=(12, 34))
    async with serve(ai_app()) as http:
        response = await http.post("/v1/chat/completions", json={**CHAT, "model": "claude"}, headers=AUTH)
    body = response.json()
    assert body["choices"][0]["message"]["content"] == "Hello! How can I help you today?"
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"] == {"prompt_tokens": 12, "completion_tokens": 34, "total_tokens": 46}


async def test_anthropic_stream_events_become_openai_chunks(ai_app, upstream):
    """message_start, ping, content_block_delta, message_delta and message_stop become OpenAI chunks, with the
    usage of message_start and message_delta."""
    upstream.default = Behaviour(usage=(21, 8))
    async with serve(ai_app()) as http:
        response = await http.post(
            "/v1/chat/completions",
            headers=AUTH,
            json={**CHAT, "model": "claude", "stream": True, "stream_options": {"include_usage": True}},
        )
    data = sse_data(response.text)
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert (
        "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
        == "Hello! How can I help you today?"
    )
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["usage"] == {"prompt_tokens": 21, "completion_tokens": 8, "total_tokens": 29}
    assert upstream.requests[0].json["stream"] is True


async def test_anthropic_error_event_mid_stream(ai_app, upstream):
    """An Anthropic `error` event (overloaded_error) mid-stream ends our stream with an error event."""
    upstream.default = Behaviour(error_event_after=2)
    async with serve(ai_app()) as http:
        response = await http.post(
            "/v1/chat/completions", json={**CHAT, "model": "claude", "stream": True}, headers=AUTH
        )
    assert "event: error" in response.text
    assert response.text.endswith("data: [DONE]\n\n")
    assert "Overloaded" not in response.text
