"""One provider under resilience: a circuit breaker, a bulkhead, a timeout, and retries before the first byte.

    upstream = Upstream("openai", settings, provider)
    answer = await upstream.complete(request)          # or: stream = await upstream.open_stream(request)

* **Retries** only until the upstream has answered 2xx (never once a byte of the answer has been
  read), and only on connection errors, 429 and 5xx (stamina, ``on=`` the named hook below). A 429
  whose Retry-After is longer than ``max_retry_wait_seconds`` is not retried: the fallback is faster.
* **Circuit breaker**: connection errors, timeouts, 429, 5xx and invalid answers count as failures; a
  4xx the request caused does not (the upstream is healthy, the request is wrong).
* **Bulkhead**: held for the whole call, and for a stream until it ends.
* **Timeout**: the whole call when not streaming; the response headers when streaming (the session's
  read timeout, ``read_timeout_seconds``, then bounds each silence between pieces).

Failures are translated into the gateway's public errors by :func:`public_error`.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from bastion.ai.errors import ProviderError, ProviderRateLimited, ProviderRejected, ProviderTimeout, ProviderUnavailable
from bastion.ai.providers.base import (
    Answer,
    Piece,
    Provider,
    UpstreamBroken,
    UpstreamInvalid,
    UpstreamStatus,
    UpstreamStream,
    UpstreamStreamError,
)
from bastion.ai.schemas import ChatCompletionRequest
from bastion.ai.settings import ProviderSettings
from bastion.core.errors import AppError, BulkheadFull, CircuitOpen
from bastion.core.resilience import Bulkhead, CircuitBreaker, retrying

T = TypeVar("T")


def _aiohttp() -> Any:
    """aiohttp if a network provider has loaded it (with its first session), else None: before that, no
    exception can be one of aiohttp's, and the local-only gateway need not import it to find that out."""
    return sys.modules.get("aiohttp")


def counts_as_failure(exc: BaseException) -> bool:
    """Whether ``exc`` says the upstream is unhealthy (for the circuit breaker)."""
    if isinstance(exc, UpstreamStatus):
        return exc.status == 429 or exc.status >= 500
    aiohttp = _aiohttp()
    if aiohttp is not None and isinstance(exc, aiohttp.ClientError):
        return True
    return isinstance(exc, TimeoutError | UpstreamBroken | UpstreamInvalid | UpstreamStreamError)


def can_fall_back(exc: BaseException) -> bool:
    """Whether the next target of the route should be tried: anything but the request's own fault."""
    return not (isinstance(exc, UpstreamStatus) and exc.status in (400, 413, 422))


def public_error(exc: BaseException) -> AppError:
    """What the client is told about ``exc``; never the upstream's own words (they may quote a key)."""
    if isinstance(exc, AppError) and not isinstance(exc, CircuitOpen | BulkheadFull):
        return exc
    if isinstance(exc, CircuitOpen):
        return ProviderUnavailable("Calls to the AI provider are paused after repeated failures.", headers=exc.headers)
    if isinstance(exc, BulkheadFull):
        return ProviderUnavailable("Too many requests are in flight to the AI provider.", retry_after=1)
    if isinstance(exc, UpstreamStatus):
        status = exc.status
        if status == 429:
            return ProviderRateLimited(
                "The AI provider is rate limiting requests; retry later.",
                retry_after=exc.retry_after if exc.retry_after is not None else 1,
            )
        if status in (401, 403):
            return ProviderError("The AI provider refused the gateway's credentials.")
        if status in (400, 413, 422):
            return ProviderRejected(
                "The AI provider rejected the request as invalid.", extra={"upstream_status": status}
            )
        return ProviderError(f"The AI provider failed (HTTP {status}).", extra={"upstream_status": status})
    if isinstance(exc, TimeoutError):  # aiohttp's connect and read timeouts are TimeoutErrors too
        return ProviderTimeout("The AI provider did not answer in time.")
    if isinstance(exc, UpstreamStreamError):
        return ProviderError("The AI provider reported an error while answering.")
    if isinstance(exc, UpstreamInvalid):
        return ProviderError("The AI provider sent an invalid answer.")
    return ProviderError("The AI provider could not be reached or dropped the connection.")


class Upstream:
    def __init__(self, name: str, settings: ProviderSettings, provider: Provider) -> None:
        self.name = name
        self.settings = settings
        self.provider = provider
        self.breaker = CircuitBreaker(
            f"ai:{name}",
            failure_threshold=settings.breaker_failures,
            reset_timeout=settings.breaker_reset_seconds,
            is_failure=counts_as_failure,
        )
        self.bulkhead = Bulkhead(
            f"ai:{name}",
            max_concurrent=settings.max_concurrent,
            max_waiting=settings.max_waiting,
            wait_timeout=settings.connect_timeout_seconds,
        )

    @property
    def streams(self) -> bool:
        return self.provider.streams

    async def complete(self, request: ChatCompletionRequest) -> Answer:
        async with self.bulkhead:
            return await self._attempts(lambda: self.provider.complete(request))

    async def open_stream(self, request: ChatCompletionRequest) -> UpstreamStream:
        """The opened stream, holding a bulkhead slot until it is closed."""
        await self.bulkhead.__aenter__()
        try:
            stream = await self._attempts(lambda: self.provider.open_stream(request))
        except BaseException:
            await self.bulkhead.__aexit__(None, None, None)
            raise
        return _Held(stream, self.bulkhead)

    async def _attempts(self, call: Callable[[], Awaitable[T]]) -> T:
        try:
            return await self._once(call)
        except Exception as exc:
            if self.settings.retries == 0 or self.retry_hook(exc) is False:
                raise
            failure: Exception | None = exc
        # The first attempt runs outside stamina: entering a retry context costs about as much as the
        # rest of the gateway's own work per call, and almost every call succeeds at once. Its failure is
        # replayed as stamina's first attempt, so backoff and Retry-After apply exactly as if it had been.
        async for attempt in retrying(
            on=self.retry_hook,
            attempts=1 + self.settings.retries,
            timeout=self.settings.timeout_seconds,
            wait_max=self.settings.max_retry_wait_seconds,
        ):
            with attempt:
                if failure is not None:
                    replayed, failure = failure, None
                    raise replayed
                return await self._once(call)
        raise AssertionError("unreachable: stamina re-raises the last failure")

    async def _once(self, call: Callable[[], Awaitable[T]]) -> T:
        async with self.breaker, asyncio.timeout(self.settings.timeout_seconds):
            return await call()

    def retry_hook(self, exc: Exception) -> bool | float:
        """stamina's ``on=``: retry connection errors, 5xx, and a 429 whose wait is short (waiting that).

        aiohttp's connection errors reach here only from before the response (a drop after it is
        ``UpstreamBroken``); a read timeout (a ``TimeoutError`` too) is not retried: the upstream may be
        working on the request."""
        aiohttp = _aiohttp()
        if aiohttp is not None and isinstance(exc, aiohttp.ConnectionTimeoutError):
            return True
        if aiohttp is not None and isinstance(exc, aiohttp.ClientConnectionError) and not isinstance(exc, TimeoutError):
            return True
        if isinstance(exc, UpstreamStatus):
            if exc.status >= 500:
                return True
            if exc.status == 429:
                if exc.retry_after is None:
                    return True
                return exc.retry_after if exc.retry_after <= self.settings.max_retry_wait_seconds else False
        return False


class _Held:
    """An opened stream that gives its bulkhead slot back when closed (however it ends)."""

    def __init__(self, stream: UpstreamStream, bulkhead: Bulkhead) -> None:
        self._stream = stream
        self._bulkhead: Bulkhead | None = bulkhead

    def __aiter__(self) -> AsyncIterator[Piece]:
        return self._stream.__aiter__()

    async def aclose(self) -> None:
        bulkhead, self._bulkhead = self._bulkhead, None
        try:
            await self._stream.aclose()
        finally:
            if bulkhead is not None:
                # never suspends, so it completes even when the closing task is being cancelled
                await bulkhead.__aexit__(None, None, None)
