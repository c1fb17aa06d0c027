"""The AI gateway: caps, routing with fallback, token budgets, metrics and logs, over the upstreams.

    service = AiService(settings.ai, upstreams, providers, store=ctx.store, lifecycle=platform.lifecycle)
    result = await service.complete(request, Caller("user:42"))
    stream = await service.open_stream(request, Caller("user:42"))
    async for piece in stream: ...

A request names a model (or an alias of one); the model's targets are tried in order until one
answers. Each provider is called through its core :class:`~bastion.core.upstream.Upstream`, whose one
classifier (:func:`bastion.ai.upstream.classify`) decides what is retried and what falls back. A stream falls
back only while it is being opened: once the first target has answered, it is that target's answer.
Prompts and answers are never logged; the log line of a call carries provider, model, latency and
token counts.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import msgspec

from bastion.ai.budget import TokenBudget
from bastion.ai.calls import CANCELLED, Caller, Result, Target
from bastion.ai.errors import (
    ModelNotFound,
    RequestTooLarge,
    UnsupportedFeature,
)
from bastion.ai.providers.base import Answer, Provider, UpstreamStream, estimate_tokens
from bastion.ai.schemas import ChatCompletionRequest, Message
from bastion.ai.settings import AiSettings
from bastion.ai.streams import ChatStream, Whole, truncate_utf8
from bastion.ai.upstream import public_error
from bastion.core import metrics
from bastion.core.errors import ValidationFailed
from bastion.core.lifecycle import Lifecycle
from bastion.core.logging import get_logger
from bastion.core.stores.base import Store
from bastion.core.upstream import Upstream

__all__ = ["AiService", "Caller", "ChatStream", "Result", "Target"]

log = get_logger("bastion.ai")
T = TypeVar("T")

_requests = metrics.counter(
    "ai_requests_total", "AI calls by provider, model and outcome", ("provider", "model", "outcome")
)
_latency = metrics.histogram(
    "ai_request_duration_seconds", "Duration of AI calls (whole stream for streams)", ("provider", "model")
)
_ttft = metrics.histogram(
    "ai_time_to_first_token_seconds", "Time to the first piece of a streamed answer", ("provider", "model")
)
_tokens = metrics.counter(
    "ai_tokens_total", "Tokens in (prompt) and out (completion)", ("provider", "model", "direction")
)
_fallbacks = metrics.counter(
    "ai_fallbacks_total", "Fallbacks taken from one provider to the next", ("model", "from_provider", "to_provider")
)


class AiService:
    def __init__(
        self,
        settings: AiSettings,
        upstreams: dict[str, Upstream],
        providers: dict[str, Provider],
        *,
        store: Store,
        lifecycle: Lifecycle,
    ) -> None:
        self.settings = settings
        self.upstreams = upstreams
        """Per provider name, the resilience its calls go through (breaker, bulkhead, retries, metrics)."""
        self.providers = providers
        """Per provider name, the adapter that speaks its wire format."""
        self.lifecycle = lifecycle
        self.budget = TokenBudget(store, per_minute=settings.tokens_per_minute, per_day=settings.tokens_per_day)
        self.routes = {name: [Target(*t.split(":", 1)) for t in targets] for name, targets in settings.models.items()}

    def model_names(self) -> list[str]:
        return sorted({*self.settings.models, *self.settings.aliases})

    def route(self, model: str | None) -> tuple[str, list[Target]]:
        name = model or self.settings.default_model
        name = self.settings.aliases.get(name, name)
        targets = self.routes.get(name)
        if targets is None:
            raise ModelNotFound(f"No model called {name!r} is served here; GET /v1/models lists them.")
        return name, targets

    def streams(self, model: str | None) -> bool:
        """Whether the model's first target can stream (``/api/chat`` answers whole when it cannot)."""
        return self.providers[self.route(model)[1][0].provider].streams

    def check(self, request: ChatCompletionRequest, message_chars: int | None = None) -> None:
        """Refuse what the gateway does not serve, and requests over the configured caps."""
        if request.tools:
            raise UnsupportedFeature("Tool calling is not supported by this gateway.")
        if request.n is not None and request.n > 1:
            raise UnsupportedFeature("Only one choice (n=1) is supported.")
        if len(request.messages) > self.settings.max_messages:
            raise RequestTooLarge(f"At most {self.settings.max_messages} messages are accepted.")
        total = 0
        for message in request.messages:
            length = len(message.text())
            if message_chars is not None and length > message_chars:
                raise RequestTooLarge(f"A message may have at most {message_chars} characters.")
            total += length
        if total > self.settings.max_total_chars:
            raise RequestTooLarge(f"The messages may have at most {self.settings.max_total_chars} characters.")

    def prompt_request(self, prompt: str, model: str | None) -> ChatCompletionRequest:
        """The chat request for an ``/api/chat`` prompt, within its length limit."""
        if not prompt.strip():
            raise ValidationFailed("The prompt is empty.")
        if len(prompt) > self.settings.chat_prompt_chars:
            raise RequestTooLarge(f"The prompt may have at most {self.settings.chat_prompt_chars} characters.")
        return ChatCompletionRequest(messages=[Message(role="user", content=prompt)], model=model)

    def prepare(self, request: ChatCompletionRequest, target: Target) -> ChatCompletionRequest:
        """The request as sent to ``target``: its upstream model, and ``max_tokens`` within the cap."""
        cap = self.settings.max_tokens
        if request.max_completion_tokens is not None:
            return msgspec.structs.replace(
                request,
                model=target.model,
                max_tokens=None,
                max_completion_tokens=min(request.max_completion_tokens, cap),
            )
        return msgspec.structs.replace(request, model=target.model, max_tokens=min(request.max_tokens or cap, cap))

    async def _admit(
        self, request: ChatCompletionRequest, caller: Caller, message_chars: int | None
    ) -> tuple[str, list[Target]]:
        """Checks every call makes before its first target: caps, the route, the caller's token budget."""
        self.check(request, message_chars)
        name, targets = self.route(request.model)
        if self.budget.enabled:
            await self.budget.check(caller.key)
        return name, targets

    async def _first_answer(
        self, name: str, targets: list[Target], call: Callable[[Target], Awaitable[T]], *, stream: bool
    ) -> tuple[int, Target, float, T]:
        """Try the route's targets in order until one answers: each failure is recorded, and a failure the
        next target could not fix (the request's own fault) is raised at once. Returns the index of the
        target that answered, the target, when its call started, and its answer."""
        last: BaseException | None = None
        for index, target in enumerate(targets):
            if index:
                _fallbacks.labels(name, targets[index - 1].provider, target.provider).inc()
            started = time.perf_counter()
            try:
                answer = await call(target)
            except Exception as exc:
                self._record(target, public_error(exc).code, started, stream=stream, fallback=index)
                if not self.upstreams[target.provider].classify(exc).fall_back:
                    raise public_error(exc) from None
                last = exc
                continue
            except BaseException:
                self._record(target, CANCELLED, started, stream=stream, fallback=index)
                raise
            return index, target, started, answer
        assert last is not None  # a route has at least one target
        raise public_error(last) from None

    async def complete(
        self, request: ChatCompletionRequest, caller: Caller, *, message_chars: int | None = None
    ) -> Result:
        name, targets = await self._admit(request, caller, message_chars)

        async def call(target: Target) -> Answer:
            provider, prepared = self.providers[target.provider], self.prepare(request, target)
            model = {"gen_ai.request.model": target.model}
            return await self.upstreams[target.provider].call(lambda: provider.complete(prepared), attributes=model)

        index, target, started, answer = await self._first_answer(name, targets, call, stream=False)
        result = self._result(request, answer)
        self._record(
            target,
            "ok",
            started,
            stream=False,
            fallback=index,
            tokens_in=result.prompt_tokens,
            tokens_out=result.completion_tokens,
        )
        if self.budget.enabled:
            await self.budget.charge(caller.key, result.prompt_tokens + result.completion_tokens)
        return result

    async def open_stream(
        self, request: ChatCompletionRequest, caller: Caller, *, message_chars: int | None = None
    ) -> ChatStream:
        """A stream whose upstream has answered 2xx; its pieces are read by iterating it."""
        name, targets = await self._admit(request, caller, message_chars)

        async def call(target: Target) -> UpstreamStream:
            upstream, provider = self.upstreams[target.provider], self.providers[target.provider]
            prepared = self.prepare(request, target)
            model = {"gen_ai.request.model": target.model}
            if provider.streams:
                return await upstream.open_stream(lambda: provider.open_stream(prepared), attributes=model)
            return Whole(await upstream.call(lambda: provider.complete(prepared), attributes=model))

        index, target, started, opened = await self._first_answer(name, targets, call, stream=True)
        prompt = sum(estimate_tokens(m.text()) for m in request.messages)
        return ChatStream(
            self, self.upstreams[target.provider], target, opened, caller, started, prompt, fallback=index
        )

    def _result(self, request: ChatCompletionRequest, answer: Answer) -> Result:
        content, finish = answer.content, answer.finish_reason
        cut = truncate_utf8(content, self.settings.max_response_bytes)
        if cut is not None:
            content, finish = cut, "length"
        prompt = answer.prompt_tokens
        if prompt is None:
            prompt = sum(estimate_tokens(m.text()) for m in request.messages)
        completion = answer.completion_tokens
        if completion is None:
            completion = estimate_tokens(answer.content)
        return Result(content, finish, answer.model, prompt, completion)

    def _record(
        self,
        target: Target,
        outcome: str,
        started: float,
        *,
        stream: bool,
        fallback: int,
        ttft: float | None = None,
        tokens_in: int = 0,
        tokens_out: int = 0,
    ) -> None:
        seconds = time.perf_counter() - started
        provider, model = target.provider, target.model
        _requests.labels(provider, model, outcome.lower()).inc()
        _latency.labels(provider, model).observe(seconds)
        if ttft is not None:
            _ttft.labels(provider, model).observe(ttft)
        if tokens_in or tokens_out:
            _tokens.labels(provider, model, "in").inc(tokens_in)
            _tokens.labels(provider, model, "out").inc(tokens_out)
        fields: dict[str, Any] = {
            "provider": provider,
            "model": model,
            "outcome": outcome.lower(),
            "stream": stream,
            "latency_ms": round(seconds * 1000.0, 3),
            "tokens_in": tokens_in,
            "tokens_out": tokens_out,
        }
        if ttft is not None:
            fields["ttft_ms"] = round(ttft * 1000.0, 3)
        if fallback:
            fields["fallback"] = fallback
        (log.info if outcome == "ok" else log.warning)("ai call", **fields)
