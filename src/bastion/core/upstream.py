"""One way to call an upstream: a bulkhead, then attempts under a circuit breaker and a timeout, retried with
stamina, every decision about an error read from ONE classifier per upstream.

    settings = UpstreamSettings(timeout_seconds=10.0, retries=2, max_concurrent=64)
    upstream = Upstream("whatsapp", settings, classify_http)          # classify_http: see core/http.py

    async def send() -> dict[str, Any]:
        response = await client.post("/messages", json=body)
        return response.raise_for_status().json()

    answer = await upstream.call(send)                                 # or upstream.call(send, retries=0)
    stream = await upstream.open_stream(open_events)                   # holds a bulkhead slot until closed

The classifier turns an exception into a :class:`Verdict`, so the fate of a 429 is read in one place:

* ``failure``: the upstream is unhealthy (the circuit breaker counts it); a 4xx the request caused is not.
* ``retry``: repeating may succeed and is safe; ``retry_after`` is the wait the upstream asked for. A wait
  longer than ``max_retry_wait_seconds`` is not waited for: the call fails at once (a caller with a
  fallback is faster trying it).
* ``fall_back``: a caller with alternatives (the AI gateway's next target) may try the next one; not when
  the request itself is at fault, as every upstream would refuse it too.

How a call runs:

* **Bulkhead** first: at most ``max_concurrent`` calls in flight, ``max_waiting`` more wait at most
  ``connect_timeout_seconds``; beyond that :class:`~bastion.core.errors.BulkheadFull`. A stream holds its
  slot until it is closed, however it ends.
* **Attempts**: each under the circuit breaker (open: :class:`~bastion.core.errors.CircuitOpen`, never
  retried) and ``timeout_seconds``. Retries (stamina, ``on=`` :meth:`Upstream.retry_wait`) back off from
  0.1 s up to ``max_retry_wait_seconds``, and all attempts together stay within ``timeout_seconds``.
* **Never after the first byte**: only what ``fn`` does is retried. A stream's ``fn`` opens it (up to the
  response headers); a failure while it is read is the caller's to report (:meth:`Upstream.stream_failed`),
  and is never repeated.

Metrics (``upstream`` is the upstream's name, never a URL): ``bastion_upstream_calls_total{upstream,
outcome}`` (outcome ``ok``, ``failure``, ``rejected`` (an error that is not the upstream's fault),
``circuit_open``, ``bulkhead_full``, ``cancelled``; and ``broken`` once more for a stream that fails after it
opened), ``bastion_upstream_call_duration_seconds{upstream}`` (a stream: until it opened),
``bastion_upstream_retries_total{upstream}``; the breaker's ``bastion_circuit_breaker_state{breaker}`` and the
bulkhead's ``bastion_bulkhead_in_use{bulkhead}`` / ``bastion_bulkhead_waiting{bulkhead}`` carry the same name.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from bastion.core import metrics
from bastion.core.errors import BulkheadFull, CircuitOpen
from bastion.core.observability import hooks
from bastion.core.resilience import Bulkhead, CircuitBreaker, retrying

T = TypeVar("T")
P = TypeVar("P")
P_co = TypeVar("P_co", covariant=True)

_calls = metrics.counter("upstream_calls_total", "Calls to upstreams by outcome", ("upstream", "outcome"))
_duration = metrics.histogram(
    "upstream_call_duration_seconds",
    "Duration of upstream calls, retries included (streams: until open)",
    ("upstream",),
)
_retries = metrics.counter("upstream_retries_total", "Attempts repeated after a retryable failure", ("upstream",))
Attributes = Mapping[str, str | int | float | bool]
OUTCOMES = ("ok", "failure", "rejected", "circuit_open", "bulkhead_full", "cancelled", "broken")


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one error says about the upstream, the retry and the fallback (see the module docstring)."""

    failure: bool
    retry: bool
    fall_back: bool
    retry_after: float | None = None
    """Seconds the upstream asked us to wait before repeating (Retry-After), when it said."""


Classifier = Callable[[BaseException], Verdict]
"""One per upstream: every decision about an error of that upstream comes from it."""

REFUSED = Verdict(failure=False, retry=False, fall_back=True)
"""Our own refusal (circuit open, bulkhead full): the upstream was not called; another one may be."""


class UpstreamSettings(BaseModel):
    """How hard Bastion may lean on one upstream. Embed it in a module's settings, or build it from them::

    class WhatsAppSettings(BaseModel):
        upstream: UpstreamSettings = UpstreamSettings(timeout_seconds=10.0)
    # BASTION_WHATSAPP__UPSTREAM__RETRIES=1
    """

    model_config = ConfigDict(frozen=True)

    timeout_seconds: float = Field(30.0, gt=0)
    """Each attempt (a stream: until it opened), and all attempts with their waits together."""
    connect_timeout_seconds: float = Field(5.0, gt=0)
    """Connecting, and waiting for a pooled connection or a bulkhead slot."""
    retries: int = Field(2, ge=0, le=5)
    """Extra attempts after a retryable failure (a call may ask for fewer, e.g. 0 for a single-use code)."""
    max_retry_wait_seconds: float = Field(2.0, ge=0)
    """Longest wait between attempts; an upstream asking for a longer one (Retry-After) is not retried."""
    breaker_failures: int = Field(5, ge=1)
    """Consecutive failures that open the circuit."""
    breaker_reset_seconds: float = Field(10.0, gt=0)
    """How long the circuit stays open before one trial call."""
    max_concurrent: int = Field(64, ge=1)
    """Bulkhead: calls (and open streams) in flight to this upstream, per worker."""
    max_waiting: int = Field(128, ge=0)
    """Calls that may wait for a bulkhead slot (for at most ``connect_timeout_seconds``)."""


class Stream(Protocol[P_co]):
    """An opened stream: iterate it for its pieces, close it however it ends."""

    def __aiter__(self) -> AsyncIterator[P_co]: ...

    async def aclose(self) -> None: ...


class Upstream:
    """One upstream: ``name`` (its breaker, bulkhead and metrics are called by it; never a URL), how hard
    it may be leaned on, and the classifier that judges its errors."""

    def __init__(self, name: str, settings: UpstreamSettings, classify: Classifier) -> None:
        self.name = name
        self.settings = settings
        self.classifier = classify
        self.breaker = CircuitBreaker(
            name,
            failure_threshold=settings.breaker_failures,
            reset_timeout=settings.breaker_reset_seconds,
            is_failure=self.counts_as_failure,
        )
        self.bulkhead = Bulkhead(
            name,
            max_concurrent=settings.max_concurrent,
            max_waiting=settings.max_waiting,
            wait_timeout=settings.connect_timeout_seconds,
        )
        # labelled children looked up once: a call then costs no label resolution
        self._outcomes = {outcome: _calls.labels(name, outcome) for outcome in OUTCOMES}
        self._duration = _duration.labels(name)
        self._retries = _retries.labels(name)

    def classify(self, exc: BaseException) -> Verdict:
        """The upstream's verdict on ``exc``; our own refusals (circuit open, bulkhead full) are judged here."""
        if isinstance(exc, CircuitOpen | BulkheadFull):
            return REFUSED
        return self.classifier(exc)

    def counts_as_failure(self, exc: BaseException) -> bool:
        """The circuit breaker's ``is_failure``."""
        return self.classify(exc).failure

    def retry_wait(self, exc: Exception) -> bool | float:
        """stamina's ``on=``: False, True (back off), or the seconds the upstream asked us to wait."""
        verdict = self.classify(exc)
        if not verdict.retry:
            return False
        wait = verdict.retry_after
        if wait is None:
            return True
        return wait if wait <= self.settings.max_retry_wait_seconds else False

    async def call(
        self, fn: Callable[[], Awaitable[T]], *, retries: int | None = None, attributes: Attributes | None = None
    ) -> T:
        """``fn()``'s result, under the bulkhead, the breaker and the timeout, retried as the classifier says.

        ``retries`` lowers (or raises) the settings' number for this call: 0 for what must not be repeated.
        ``attributes`` go on the call's span when tracing is on (``{"gen_ai.request.model": model}``)."""
        tracing = hooks.tracing
        if tracing is not None:
            with tracing.span(f"upstream {self.name}", self._span_attributes(attributes)):
                return await self._call(fn, retries)
        return await self._call(fn, retries)

    def _span_attributes(self, attributes: Attributes | None) -> dict[str, str | int | float | bool]:
        found: dict[str, str | int | float | bool] = {"bastion.upstream": self.name}
        if attributes:
            found.update(attributes)
        return found

    async def _call(self, fn: Callable[[], Awaitable[T]], retries: int | None) -> T:
        started = time.perf_counter()
        try:
            async with self.bulkhead:
                result = await self._attempts(fn, retries)
        except BaseException as exc:
            self._record(self._outcome(exc), started)
            raise
        self._record("ok", started)
        return result

    async def open_stream(
        self,
        fn: Callable[[], Awaitable[Stream[P]]],
        *,
        retries: int | None = None,
        attributes: Attributes | None = None,
    ) -> Held[P]:
        """The stream ``fn()`` opens, holding a bulkhead slot until it is closed. Only opening is retried (and
        traced: the span ends when the stream has opened)."""
        tracing = hooks.tracing
        if tracing is not None:
            with tracing.span(f"upstream {self.name} open", self._span_attributes(attributes)):
                return await self._open_stream(fn, retries)
        return await self._open_stream(fn, retries)

    async def _open_stream(self, fn: Callable[[], Awaitable[Stream[P]]], retries: int | None) -> Held[P]:
        started = time.perf_counter()
        try:
            await self.bulkhead.__aenter__()
            try:
                stream = await self._attempts(fn, retries)
            except BaseException:
                await self.bulkhead.__aexit__(None, None, None)
                raise
        except BaseException as exc:
            self._record(self._outcome(exc), started)
            raise
        self._record("ok", started)
        return Held(stream, self.bulkhead)

    def stream_failed(self, exc: BaseException) -> None:
        """An opened stream failed while it was read: counted for the breaker if the upstream is at fault
        (never retried: its first bytes are already out)."""
        if self.classify(exc).failure:
            self.breaker.record_failure()
            self._outcomes["broken"].inc()

    async def _attempts(self, fn: Callable[[], Awaitable[T]], retries: int | None) -> T:
        retries = self.settings.retries if retries is None else retries
        try:
            return await self._once(fn, 1)
        except Exception as exc:
            if retries == 0 or self.retry_wait(exc) is False:
                raise
            failure: Exception | None = exc
        # The first attempt runs outside stamina: entering a retry context costs about as much as the
        # rest of the gateway's own work per call, and almost every call succeeds at once. Its failure is
        # replayed as stamina's first attempt, so backoff and Retry-After apply exactly as if it had been.
        async for attempt in retrying(
            on=self.retry_wait,
            attempts=1 + retries,
            timeout=self.settings.timeout_seconds,
            wait_max=self.settings.max_retry_wait_seconds,
        ):
            with attempt:
                if failure is not None:
                    replayed, failure = failure, None
                    raise replayed
                self._retries.inc()
                return await self._once(fn, attempt.num)
        raise AssertionError("unreachable: stamina re-raises the last failure")

    async def _once(self, fn: Callable[[], Awaitable[T]], attempt: int) -> T:
        tracing = hooks.tracing
        if tracing is not None:
            state = self.breaker.state.name.lower()
            with tracing.span("attempt", {"bastion.attempt": attempt, "bastion.breaker.state": state}):
                async with self.breaker, asyncio.timeout(self.settings.timeout_seconds):
                    return await fn()
        async with self.breaker, asyncio.timeout(self.settings.timeout_seconds):
            return await fn()

    def _outcome(self, exc: BaseException) -> str:
        if not isinstance(exc, Exception):
            return "cancelled"
        if isinstance(exc, CircuitOpen):
            return "circuit_open"
        if isinstance(exc, BulkheadFull):
            return "bulkhead_full"
        return "failure" if self.classify(exc).failure else "rejected"

    def _record(self, outcome: str, started: float) -> None:
        self._outcomes[outcome].inc()
        self._duration.observe(time.perf_counter() - started)


class Held(Generic[P]):
    """An opened stream that gives its bulkhead slot back when closed (however it ends)."""

    __slots__ = ("_bulkhead", "_stream")

    def __init__(self, stream: Stream[P], bulkhead: Bulkhead) -> None:
        self._stream = stream
        self._bulkhead: Bulkhead | None = bulkhead

    def __aiter__(self) -> AsyncIterator[P]:
        return self._stream.__aiter__()

    async def aclose(self) -> None:
        bulkhead, self._bulkhead = self._bulkhead, None
        try:
            await self._stream.aclose()
        finally:
            if bulkhead is not None:
                # never suspends, so it completes even when the closing task is being cancelled
                await bulkhead.__aexit__(None, None, None)
