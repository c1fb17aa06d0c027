"""Fixtures of the AI gateway tests: a fake upstream on a real socket, and apps routed to it.

``ai_app(...)`` builds a Bastion app whose ``fake`` provider (OpenAI wire format) and ``claude`` provider
(Anthropic wire format) both point at the fake upstream, with the test principal resolver
(``Authorization: Bearer user-<id>``) and the ``ai`` tier raised so that tests are never rate limited
unless they mean to be.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from bastion.ai.service import AiService
from bastion.app import Bastion
from tests.ai.fakes import FakeUpstream, run_server
from tests.support import principal_module

AUTH = {"Authorization": "Bearer user-alice"}
CHAT = {"model": "gpt", "messages": [{"role": "user", "content": "Say hello"}]}


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    fake = FakeUpstream()
    async with run_server(fake) as port:
        fake.port = port
        yield fake


def providers_for(upstream: FakeUpstream, **fake: Any) -> dict[str, Any]:
    return {
        "fake": {
            "kind": "openai",
            "base_url": upstream.url + "/v1",
            "api_key": "sk-test-upstream-key",
            "timeout_seconds": 2.0,
            "read_timeout_seconds": 1.0,
            **fake,
        },
        "claude": {
            "kind": "anthropic",
            "base_url": upstream.url,
            "api_key": "sk-ant-test-upstream-key",
            "timeout_seconds": 2.0,
            "read_timeout_seconds": 1.0,
        },
    }


@pytest.fixture
def ai_app(make_app: Callable[..., Bastion], upstream: FakeUpstream) -> Callable[..., Bastion]:
    def build(
        *,
        providers: dict[str, Any] | None = None,
        models: dict[str, list[str]] | None = None,
        ai: dict[str, Any] | None = None,
        **overrides: Any,
    ) -> Bastion:
        config: dict[str, Any] = {
            "providers": providers or providers_for(upstream),
            "models": models
            or {"gpt": ["fake:fake-model"], "claude": ["claude:claude-test"], "default": ["local:bastion-local-dev"]},
            "aliases": {"openai/gpt-4o": "gpt"},
            "default_model": "gpt",
            **(ai or {}),
        }
        overrides.setdefault("rate_limits", {"ai": "100000/minute"})
        return make_app(extra=(principal_module,), ai=config, **overrides)

    return build


def service_of(app: Bastion) -> AiService:
    """The app's AI service (to reach a provider's breaker or bulkhead in a test)."""
    service: AiService = app.litestar.dependencies["ai_service"].dependency()  # type: ignore[union-attr]
    return service


def sse_data(body: str) -> list[str]:
    """The ``data:`` payloads of an SSE body, in order."""
    return [line[6:] for line in body.splitlines() if line.startswith("data: ")]


def sse_events(body: str) -> list[tuple[str | None, str]]:
    """``(event, data)`` of each event of an SSE body."""
    found = []
    for block in body.split("\n\n"):
        event, data = None, None
        for line in block.splitlines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
        if data is not None:
            found.append((event, data))
    return found


@pytest.fixture
def live() -> Callable[[Bastion], Any]:
    """Serve an app with uvicorn on a real socket (lifespan included); yields its base URL."""
    import contextlib

    @contextlib.asynccontextmanager
    async def serve_live(app: Bastion) -> AsyncIterator[str]:
        async with run_server(app, lifespan="on") as port:
            yield f"http://127.0.0.1:{port}"

    return serve_live
