"""``/v1/chat/completions`` and ``/v1/models``: the OpenAI wire format over a fake upstream, and the caps."""

from __future__ import annotations

import json

from tests.ai.conftest import AUTH, CHAT, sse_data
from tests.ai.fakes import Behaviour
from tests.conftest import serve


async def test_completion_passes_through_in_openai_format(ai_app, upstream):
    """A whole answer comes back as a chat.completion with the upstream's content and usage."""
    async with serve(ai_app()) as http:
        response = await http.post("/v1/chat/completions", json=CHAT, headers=AUTH)
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")
    assert body["model"] == "fake-model"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "Hello! How can I help you today?"}
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"] == {"prompt_tokens": 10, "completion_tokens": 9, "total_tokens": 19}


async def test_upstream_gets_its_model_name_and_key(ai_app, upstream):
    """The routed request names the upstream's model and carries the provider's key, not the caller's."""
    async with serve(ai_app()) as http:
        await http.post("/v1/chat/completions", json=CHAT, headers=AUTH)
    sent = upstream.requests[0]
    assert sent.path == "/v1/chat/completions"
    assert sent.json["model"] == "fake-model"
    assert sent.headers["authorization"] == "Bearer sk-test-upstream-key"
    assert sent.json["messages"] == CHAT["messages"]


async def test_max_tokens_is_capped(ai_app, upstream):
    """max_tokens above the cap is lowered to it; a request without one gets the cap."""
    async with serve(ai_app()) as http:
        await http.post("/v1/chat/completions", json={**CHAT, "max_tokens": 50_000}, headers=AUTH)
        await http.post("/v1/chat/completions", json=CHAT, headers=AUTH)
        await http.post("/v1/chat/completions", json={**CHAT, "max_tokens": 20}, headers=AUTH)
    assert [r.json["max_tokens"] for r in upstream.requests] == [1000, 1000, 20]


async def test_stream_is_openai_chunks_ending_with_done(ai_app, upstream):
    """A stream is chat.completion.chunk events (role first, then content, then the finish), then [DONE]."""
    async with serve(ai_app()) as http:
        response = await http.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=AUTH)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    data = sse_data(response.text)
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "fake-model" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == "Hello! How can I help you today?"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert "usage" not in chunks[-1]


async def test_stream_usage_chunk_only_when_asked(ai_app, upstream):
    """With stream_options.include_usage a final chunk with no choices carries the usage."""
    async with serve(ai_app()) as http:
        response = await http.post(
            "/v1/chat/completions",
            headers=AUTH,
            json={**CHAT, "stream": True, "stream_options": {"include_usage": True}},
        )
    chunks = [json.loads(d) for d in sse_data(response.text)[:-1]]
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == {"prompt_tokens": 10, "completion_tokens": 9, "total_tokens": 19}
    assert upstream.requests[0].json["stream_options"] == {"include_usage": True}


async def test_upstream_is_always_asked_for_stream_usage(ai_app, upstream):
    """Budgets count real usage: the upstream is asked for it even when the client is not."""
    async with serve(ai_app()) as http:
        await http.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=AUTH)
    assert upstream.requests[0].json["stream"] is True
    assert upstream.requests[0].json["stream_options"] == {"include_usage": True}


async def test_models_lists_models_and_aliases(ai_app):
    """GET /v1/models is an OpenAI model list of the configured names and aliases."""
    async with serve(ai_app()) as http:
        response = await http.get("/v1/models", headers=AUTH)
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "list"
    assert {m["id"] for m in body["data"]} == {"gpt", "claude", "default", "openai/gpt-4o", "openai/gpt-4o-mini"}
    assert all(m["object"] == "model" for m in body["data"])


async def test_unknown_model_is_404(ai_app, upstream):
    """A model that is neither configured nor an alias is 404 MODEL_NOT_FOUND; nothing goes upstream."""
    async with serve(ai_app()) as http:
        response = await http.post("/v1/chat/completions", json={**CHAT, "model": "gpt-9"}, headers=AUTH)
    assert response.status_code == 404
    assert response.json()["code"] == "MODEL_NOT_FOUND"
    assert upstream.requests == []


async def test_alias_routes_to_its_model(ai_app, upstream):
    """An alias (the Spark client's openai/gpt-4o) is served by the model it names."""
    async with serve(ai_app()) as http:
        response = await http.post("/v1/chat/completions", json={**CHAT, "model": "openai/gpt-4o"}, headers=AUTH)
    assert response.status_code == 200
    assert upstream.requests[0].json["model"] == "fake-model"


async def test_tools_are_refused_not_ignored(ai_app, upstream):
    """A request with tools is 422 UNSUPPORTED_FEATURE rather than silently answered without them."""
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    async with serve(ai_app()) as http:
        response = await http.post("/v1/chat/completions", json={**CHAT, "tools": tools}, headers=AUTH)
    assert response.status_code == 422
    assert response.json()["code"] == "UNSUPPORTED_FEATURE"
    assert upstream.requests == []


async def test_more_than_50_messages_is_refused(ai_app, upstream):
    """51 messages are 422 REQUEST_TOO_LARGE; 50 are served."""
    many = [{"role": "user", "content": "hi"}] * 51
    async with serve(ai_app()) as http:
        refused = await http.post("/v1/chat/completions", json={**CHAT, "messages": many}, headers=AUTH)
        served = await http.post("/v1/chat/completions", json={**CHAT, "messages": many[:50]}, headers=AUTH)
    assert refused.status_code == 422 and refused.json()["code"] == "REQUEST_TOO_LARGE"
    assert served.status_code == 200
    assert len(upstream.requests) == 1


async def test_more_than_50000_characters_is_refused(ai_app, upstream):
    """Messages totalling over 50,000 characters of text are 422 REQUEST_TOO_LARGE."""
    messages = [{"role": "user", "content": "x" * 25_000}, {"role": "user", "content": "y" * 25_001}]
    async with serve(ai_app()) as http:
        response = await http.post("/v1/chat/completions", json={**CHAT, "messages": messages}, headers=AUTH)
    assert response.status_code == 422 and response.json()["code"] == "REQUEST_TOO_LARGE"
    assert upstream.requests == []


async def test_malformed_body_is_400_and_schema_errors_422(ai_app):
    """Broken JSON is 400 MALFORMED_BODY; a body without messages is 422 VALIDATION_FAILED."""
    async with serve(ai_app()) as http:
        broken = await http.post(
            "/v1/chat/completions", content=b"{", headers={**AUTH, "content-type": "application/json"}
        )
        empty = await http.post("/v1/chat/completions", json={"model": "gpt"}, headers=AUTH)
    assert broken.status_code == 400 and broken.json()["code"] == "MALFORMED_BODY"
    assert empty.status_code == 422 and empty.json()["code"] == "VALIDATION_FAILED"


async def test_anonymous_callers_need_a_principal(ai_app, upstream):
    """Without a principal the gateway answers 401 (AI calls cost money), unless anonymous use is on."""
    async with serve(ai_app()) as http:
        refused = await http.post("/v1/chat/completions", json=CHAT)
    async with serve(ai_app(ai={"allow_anonymous": True})) as http:
        allowed = await http.post("/v1/chat/completions", json=CHAT)
    assert refused.status_code == 401 and refused.json()["code"] == "UNAUTHORIZED"
    assert allowed.status_code == 200


async def test_ai_routes_are_in_the_ai_tier(ai_app):
    """The ai tier limits /v1 calls per principal (here 2 a minute)."""
    async with serve(ai_app(rate_limits={"ai": "2/minute"})) as http:
        statuses = [(await http.post("/v1/chat/completions", json=CHAT, headers=AUTH)).status_code for _ in range(3)]
        last = await http.post("/v1/chat/completions", json=CHAT, headers=AUTH)
    assert statuses == [200, 200, 429]
    assert last.headers["ratelimit-policy"] == '"ai";q=2;w=60'


async def test_long_answer_is_cut_at_a_character_boundary(ai_app, upstream):
    """An answer over the response cap ends at the cap, on a whole UTF-8 character, with finish_reason length."""
    upstream.default = Behaviour(words=["é" * 6000])  # 12,000 bytes of two-byte characters
    async with serve(ai_app(ai={"max_response_bytes": 10_239})) as http:
        response = await http.post("/v1/chat/completions", json=CHAT, headers=AUTH)
    choice = response.json()["choices"][0]
    assert choice["finish_reason"] == "length"
    assert choice["message"]["content"] == "é" * 5119  # 10,238 bytes: the 5,120th would pass the cap


async def test_long_stream_is_cut_and_the_upstream_closed(ai_app, upstream):
    """A stream over the response cap ends with finish_reason length, and the upstream stops being read."""
    upstream.default = Behaviour(words=["ab€"] * 5000, chunk_delay=0.001)  # 5 bytes a piece
    async with serve(ai_app(ai={"max_response_bytes": 1002})) as http:
        response = await http.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=AUTH)
    chunks = [json.loads(d) for d in sse_data(response.text)[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "ab€" * 200 + "ab"  # 1,000 bytes, then "ab" fits and "€" (3 bytes) does not
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    await upstream.wait_cancelled()
