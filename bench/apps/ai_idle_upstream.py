"""An OpenAI-compatible upstream whose streams go idle: one role chunk, then silence for an hour.

Used by ``bench/ai.py`` to hold many streams open at once through a gateway and measure its memory.
(A raw ASGI app, so it runs on the project's own uvicorn.)
"""

from __future__ import annotations

import asyncio
import json

FIRST = (
    b'data: {"id":"chatcmpl-idle","object":"chat.completion.chunk","created":1,"model":"hold",'
    b'"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}\n\n'
)
WHOLE = json.dumps(
    {
        "id": "chatcmpl-idle",
        "object": "chat.completion",
        "created": 1,
        "model": "hold",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "idle"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
).encode()


async def app(scope, receive, send):  # type: ignore[no-untyped-def]
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if not json.loads(body or b"{}").get("stream"):
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": WHOLE})
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
    await send({"type": "http.response.body", "body": FIRST, "more_body": True})
    await asyncio.sleep(3600)
