"""Circuit breaker: stop calling an upstream that keeps failing, and probe it again after a pause.

Written here rather than taken from a library: pybreaker is synchronous (its async path needs
Tornado), aiobreaker is unmaintained, and neither exports its state to Prometheus. This one is
~100 lines and does only what we need::

    breaker = CircuitBreaker("openai", failure_threshold=5, reset_timeout=10.0)
    async with breaker:              # raises CircuitOpen while open
        response = await client.post(...)

States: *closed* (calls pass; ``failure_threshold`` consecutive failures open it), *open* (calls fail
fast with ``CircuitOpen`` and a Retry-After until ``reset_timeout`` has passed), *half-open* (up to
``half_open_max_calls`` trial calls; a success closes it, a failure opens it again). Which exceptions
count as failures is the caller's choice (``is_failure``); a client's own mistake, such as a 400 from
the upstream, should not open the circuit.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from types import TracebackType

from bastion.core import metrics
from bastion.core.errors import CircuitOpen
from bastion.core.logging import get_logger

log = get_logger("bastion.breaker")


class State(enum.IntEnum):
    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class CircuitBreaker:
    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 5,
        reset_timeout: float = 10.0,
        half_open_max_calls: int = 1,
        is_failure: Callable[[BaseException], bool] = lambda exc: isinstance(exc, Exception),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self.half_open_max_calls = half_open_max_calls
        self.is_failure = is_failure
        self.clock = clock
        self.state = State.CLOSED
        self.failures = 0
        self.opened_at = 0.0
        self.trials = 0
        metrics.breaker_state.labels(name).set(0)

    @property
    def retry_after(self) -> float:
        return max(0.0, self.opened_at + self.reset_timeout - self.clock())

    def before_call(self) -> None:
        """Admit a call or raise ``CircuitOpen``."""
        if self.state is State.OPEN:
            if self.clock() - self.opened_at < self.reset_timeout:
                raise CircuitOpen(
                    f"{self.name} is failing; calls are paused.",
                    retry_after=self.retry_after,
                    extra={"upstream": self.name},
                )
            self._move(State.HALF_OPEN)
        if self.state is State.HALF_OPEN:
            if self.trials >= self.half_open_max_calls:
                raise CircuitOpen(
                    f"{self.name} is being probed; try again shortly.", retry_after=1.0, extra={"upstream": self.name}
                )
            self.trials += 1

    def record_success(self) -> None:
        if self.state is State.OPEN:
            return  # a call admitted before the circuit opened: only a half-open trial may close it
        self.failures = 0
        if self.state is not State.CLOSED:
            self._move(State.CLOSED)

    def record_failure(self) -> None:
        if self.state is State.OPEN:
            return  # a late failure of a call admitted before the circuit opened: it is open already
        self.failures += 1
        if self.state is State.HALF_OPEN or self.failures >= self.failure_threshold:
            self.opened_at = self.clock()
            self._move(State.OPEN)

    def release_trial(self) -> None:
        """A half-open trial ended without a verdict (e.g. the caller was cancelled)."""
        if self.state is State.HALF_OPEN and self.trials > 0:
            self.trials -= 1

    def _move(self, state: State) -> None:
        if state is self.state:
            return
        previous, self.state = self.state, state
        self.trials = 0
        metrics.breaker_state.labels(self.name).set(int(state))
        metrics.breaker_transitions.labels(self.name, state.name.lower()).inc()
        level = log.warning if state is State.OPEN else log.info
        level(
            "circuit state changed",
            breaker=self.name,
            previous=previous.name.lower(),
            state=state.name.lower(),
            failures=self.failures,
        )

    async def __aenter__(self) -> CircuitBreaker:
        self.before_call()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None:
            self.record_success()
        elif self.is_failure(exc):
            self.record_failure()
        elif isinstance(exc, Exception):
            self.record_success()  # the upstream answered; the error was not its fault
        else:
            self.release_trial()  # cancelled: no verdict on the upstream
