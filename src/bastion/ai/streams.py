"""An answer streamed to the client: capped in size and time, closed however it ends, recorded once."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from bastion.ai.calls import CANCELLED, Caller, Target
from bastion.ai.providers.base import Answer, Piece, UpstreamStream
from bastion.ai.upstream import public_error
from bastion.core.errors import AppError
from bastion.core.upstream import Upstream

if TYPE_CHECKING:
    from bastion.ai.service import AiService


class ChatStream:
    """An opened answer stream: iterate it for :class:`Piece` objects, capped at the response size.

    Whatever ends it (the last piece, an upstream failure, the client leaving, the worker draining),
    the upstream response is closed, its bulkhead slot freed, and the call recorded and charged to the
    caller's budget. A failure after the start is raised from the iteration as the gateway's public
    error (the router turns it into an SSE error event).
    """

    def __init__(
        self,
        service: AiService,
        upstream: Upstream,
        target: Target,
        opened: UpstreamStream,
        caller: Caller,
        started: float,
        prompt_estimate: int,
        *,
        fallback: int,
    ) -> None:
        self.model = target.model
        self.prompt_tokens = prompt_estimate
        self.completion_tokens = 0
        self.finish_reason = "stop"
        self._service = service
        self._upstream = upstream
        self._target = target
        self._opened = opened
        self._caller = caller
        self._started = started
        self._fallback = fallback
        self._reported_prompt: int | None = None
        self._reported_completion: int | None = None
        self._closed = False

    async def __aiter__(self) -> AsyncIterator[Piece]:
        settings = self._service.settings
        budget_bytes = settings.max_response_bytes
        deadline = self._started + settings.max_stream_seconds
        sent_bytes = 0
        text_parts = 0
        ttft: float | None = None
        outcome = CANCELLED  # unless the loop below reaches an end
        try:
            async for piece in self._opened:
                if piece.prompt_tokens is not None:
                    self._reported_prompt = piece.prompt_tokens
                if piece.completion_tokens is not None:
                    self._reported_completion = piece.completion_tokens
                if piece.finish_reason is not None:
                    self.finish_reason = piece.finish_reason
                if not piece.text:
                    continue
                now = time.perf_counter()
                if ttft is None:
                    ttft = now - self._started
                if now > deadline:
                    self.finish_reason = "length"
                    break
                size = len(piece.text.encode())
                if sent_bytes + size > budget_bytes:
                    cut = truncate_utf8(piece.text, budget_bytes - sent_bytes) or ""
                    self.finish_reason = "length"
                    if cut:
                        text_parts += len(cut)
                        yield Piece(cut)
                    break
                sent_bytes += size
                text_parts += len(piece.text)
                yield piece
            outcome = "ok"
        except AppError:
            raise
        except Exception as exc:
            self._upstream.stream_failed(exc)
            error = public_error(exc)
            outcome = error.code
            raise error from None
        finally:
            await self._close(outcome, ttft, text_parts)

    async def aclose(self) -> None:
        """Close the upstream even if the stream was never iterated (a client that left at once)."""
        await self._close(CANCELLED, None, 0)

    async def _close(self, outcome: str, ttft: float | None, text_chars: int) -> None:
        if self._closed:
            return
        self._closed = True
        closed = False
        try:
            await self._opened.aclose()
            closed = True
        finally:
            self._finish(outcome, ttft, text_chars)
            budget = self._service.budget
            if budget.enabled and not (closed and outcome == "ok"):
                # cut short, maybe in a task being cancelled: charge from a task of its own
                self._service.lifecycle.spawn(budget.charge(self._caller.key, self.total_tokens), "ai-budget-charge")
        if closed and outcome == "ok" and self._service.budget.enabled:
            await self._service.budget.charge(self._caller.key, self.total_tokens)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def _finish(self, outcome: str, ttft: float | None, text_chars: int) -> None:
        """Settle the token counts and record the call; synchronous, so it completes in a cancelled task."""
        if self._reported_prompt is not None:
            self.prompt_tokens = self._reported_prompt
        reported = self._reported_completion
        self.completion_tokens = reported if reported is not None else text_chars // 4 + 1
        self._service._record(
            self._target,
            outcome,
            self._started,
            stream=True,
            fallback=self._fallback,
            ttft=ttft,
            tokens_in=self.prompt_tokens,
            tokens_out=self.completion_tokens,
        )


class Whole:
    """A whole answer served as a stream, for upstreams that cannot stream."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer

    async def __aiter__(self) -> AsyncIterator[Piece]:
        answer = self.answer
        yield Piece(answer.content, answer.finish_reason, answer.prompt_tokens, answer.completion_tokens)

    async def aclose(self) -> None:
        return None


def truncate_utf8(text: str, max_bytes: int) -> str | None:
    """``text`` cut to at most ``max_bytes`` of UTF-8 at a character boundary, or None if it fits."""
    if len(text) * 4 <= max_bytes:
        return None  # cheap exit: even all 4-byte characters would fit
    encoded = text.encode()
    if len(encoded) <= max_bytes:
        return None
    return encoded[:max_bytes].decode("utf-8", "ignore")
