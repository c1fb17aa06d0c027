"""The resilience kit: circuit breaker (on a fake clock), bulkhead, single-flight and retries."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import stamina
from prometheus_client import REGISTRY

from bastion.core.errors import BulkheadFull, CircuitOpen
from bastion.core.resilience import Bulkhead, CircuitBreaker, SingleFlight, State, retrying
from tests.support import FakeClock


class Upstream(Exception):
    """The upstream failed (counts as a failure)."""


class ClientMistake(Exception):
    """The caller's own error (does not count)."""


def _breaker(clock: FakeClock, **kw) -> CircuitBreaker:
    kw.setdefault("failure_threshold", 3)
    kw.setdefault("reset_timeout", 10.0)
    return CircuitBreaker(
        f"test-{uuid.uuid4().hex[:10]}", clock=clock, is_failure=lambda exc: isinstance(exc, Upstream), **kw
    )


async def _fail(breaker: CircuitBreaker, times: int = 1) -> None:
    for _ in range(times):
        with pytest.raises(Upstream):
            async with breaker:
                raise Upstream


async def _succeed(breaker: CircuitBreaker) -> None:
    async with breaker:
        pass


def _gauge(breaker: CircuitBreaker) -> float | None:
    return REGISTRY.get_sample_value("bastion_circuit_breaker_state", {"breaker": breaker.name})


async def _open(clock: FakeClock, **kw) -> CircuitBreaker:
    breaker = _breaker(clock, **kw)
    await _fail(breaker, breaker.failure_threshold)
    assert breaker.state is State.OPEN
    return breaker


# --- CircuitBreaker ----------------------------------------------------------------------------


async def test_breaker_starts_closed():
    """A new breaker is closed, lets calls through and reports 0 in the state gauge."""
    breaker = _breaker(FakeClock())
    calls = []
    async with breaker:
        calls.append(1)
    assert breaker.state is State.CLOSED and calls == [1]
    assert _gauge(breaker) == 0


async def test_breaker_stays_closed_below_the_failure_threshold():
    """failure_threshold - 1 consecutive failures leave the breaker closed."""
    breaker = _breaker(FakeClock())
    await _fail(breaker, 2)
    assert breaker.state is State.CLOSED
    await _succeed(breaker)


async def test_breaker_opens_after_the_failure_threshold():
    """failure_threshold consecutive failures open the breaker, and the gauge shows 2."""
    breaker = _breaker(FakeClock())
    await _fail(breaker, 3)
    assert breaker.state is State.OPEN
    assert _gauge(breaker) == 2


async def test_a_success_resets_the_consecutive_failure_count():
    """Failures separated by a success are not consecutive and do not open the breaker."""
    breaker = _breaker(FakeClock())
    await _fail(breaker, 2)
    await _succeed(breaker)
    await _fail(breaker, 2)
    assert breaker.state is State.CLOSED


async def test_open_breaker_fails_fast_without_calling_through():
    """While open, entering raises CircuitOpen and the body never runs."""
    breaker = await _open(FakeClock())
    ran = []
    with pytest.raises(CircuitOpen):
        async with breaker:
            ran.append(1)
    assert ran == []


async def test_circuit_open_carries_a_retry_after_header_for_the_time_left():
    """CircuitOpen is a 503 whose Retry-After is the time left until the breaker probes again."""
    clock = FakeClock()
    breaker = await _open(clock, reset_timeout=10.0)
    clock.now += 3.5
    with pytest.raises(CircuitOpen) as caught:
        breaker.before_call()
    assert caught.value.status == 503
    assert caught.value.headers["Retry-After"] == "7"
    assert caught.value.extra["upstream"] == breaker.name
    assert breaker.retry_after == pytest.approx(6.5)


async def test_breaker_stays_open_until_the_reset_timeout():
    """Just before reset_timeout has passed the breaker still refuses."""
    clock = FakeClock()
    breaker = await _open(clock, reset_timeout=10.0)
    clock.now += 9.99
    with pytest.raises(CircuitOpen):
        breaker.before_call()
    assert breaker.state is State.OPEN


async def test_breaker_is_half_open_after_the_reset_timeout():
    """After reset_timeout the next call is admitted as a trial and the gauge shows 1."""
    clock = FakeClock()
    breaker = await _open(clock, reset_timeout=10.0)
    clock.now += 10.0
    breaker.before_call()
    assert breaker.state is State.HALF_OPEN
    assert _gauge(breaker) == 1


async def test_half_open_admits_only_one_trial_by_default():
    """While a half-open trial runs, other calls are refused with CircuitOpen."""
    clock = FakeClock()
    breaker = await _open(clock)
    clock.now += 10
    breaker.before_call()
    with pytest.raises(CircuitOpen) as caught:
        breaker.before_call()
    assert "Retry-After" in caught.value.headers


async def test_half_open_admits_half_open_max_calls_trials():
    """With half_open_max_calls=2 two trials are admitted and the third is refused."""
    clock = FakeClock()
    breaker = await _open(clock, half_open_max_calls=2)
    clock.now += 10
    breaker.before_call()
    breaker.before_call()
    with pytest.raises(CircuitOpen):
        breaker.before_call()


async def test_a_successful_trial_closes_the_breaker():
    """A half-open trial that succeeds closes the breaker and the gauge returns to 0."""
    clock = FakeClock()
    breaker = await _open(clock)
    clock.now += 10
    await _succeed(breaker)
    assert breaker.state is State.CLOSED
    assert _gauge(breaker) == 0
    await _fail(breaker, 2)
    assert breaker.state is State.CLOSED  # the failure count started afresh


async def test_a_failed_trial_reopens_the_breaker_for_a_full_reset_timeout():
    """A half-open trial that fails opens the breaker again, counting reset_timeout from then."""
    clock = FakeClock()
    breaker = await _open(clock, reset_timeout=10.0)
    clock.now += 10
    await _fail(breaker)
    assert breaker.state is State.OPEN
    assert _gauge(breaker) == 2
    clock.now += 9
    with pytest.raises(CircuitOpen):
        breaker.before_call()
    clock.now += 1
    breaker.before_call()
    assert breaker.state is State.HALF_OPEN


async def test_exceptions_that_are_not_failures_do_not_open_the_breaker():
    """Errors for which is_failure is False propagate but never count towards opening."""
    breaker = _breaker(FakeClock())
    for _ in range(10):
        with pytest.raises(ClientMistake):
            async with breaker:
                raise ClientMistake
    assert breaker.state is State.CLOSED


async def test_a_non_failure_error_in_a_trial_closes_the_breaker():
    """A half-open trial ending in a non-failure error shows the upstream answered: the breaker closes."""
    clock = FakeClock()
    breaker = await _open(clock)
    clock.now += 10
    with pytest.raises(ClientMistake):
        async with breaker:
            raise ClientMistake
    assert breaker.state is State.CLOSED


async def test_default_is_failure_counts_every_exception():
    """Without is_failure, any Exception counts as a failure."""
    breaker = CircuitBreaker(f"test-{uuid.uuid4().hex[:10]}", failure_threshold=2, clock=FakeClock())
    for _ in range(2):
        with pytest.raises(ValueError, match="x"):
            async with breaker:
                raise ValueError("x")
    assert breaker.state is State.OPEN


async def test_cancelling_a_half_open_trial_releases_its_slot():
    """A trial cancelled mid-call gives its slot back, so the next caller may probe."""
    clock = FakeClock()
    breaker = await _open(clock)
    clock.now += 10
    entered = asyncio.Event()

    async def trial() -> None:
        async with breaker:
            entered.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(trial())
    await entered.wait()
    with pytest.raises(CircuitOpen):
        breaker.before_call()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert breaker.state is State.HALF_OPEN
    await _succeed(breaker)
    assert breaker.state is State.CLOSED


async def test_cancellation_while_closed_is_not_a_failure():
    """Calls cancelled while the breaker is closed do not count towards opening it."""
    breaker = _breaker(FakeClock(), failure_threshold=1)
    for _ in range(3):
        entered = asyncio.Event()

        async def call(entered: asyncio.Event = entered) -> None:
            async with breaker:
                entered.set()
                await asyncio.Event().wait()

        task = asyncio.create_task(call())
        await entered.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert breaker.state is State.CLOSED


# --- Bulkhead ----------------------------------------------------------------------------------


async def test_bulkhead_admits_at_most_max_concurrent_at_once():
    """Of ten callers at most max_concurrent are inside at any time; the rest wait their turn and all finish."""
    bulkhead = Bulkhead("up", max_concurrent=3, max_waiting=10, wait_timeout=5)
    gate = asyncio.Event()
    inside = peak = 0

    async def call() -> None:
        nonlocal inside, peak
        async with bulkhead:
            inside += 1
            peak = max(peak, inside)
            await gate.wait()
            inside -= 1

    tasks = [asyncio.create_task(call()) for _ in range(10)]
    async with asyncio.timeout(1):
        while bulkhead.waiting < 7:
            await asyncio.sleep(0)
    assert bulkhead.active == 3 and inside == 3
    gate.set()
    await asyncio.gather(*tasks)
    assert peak == 3
    assert bulkhead.active == 0 and bulkhead.waiting == 0


async def test_bulkhead_refuses_at_once_beyond_max_waiting():
    """When every slot is taken and max_waiting callers already wait, the next is refused without waiting."""
    bulkhead = Bulkhead("up", max_concurrent=1, max_waiting=1, wait_timeout=30)
    gate = asyncio.Event()

    async def hold() -> None:
        async with bulkhead:
            await gate.wait()

    tasks = [asyncio.create_task(hold()) for _ in range(2)]
    async with asyncio.timeout(1):
        while bulkhead.waiting < 1:
            await asyncio.sleep(0)
    async with asyncio.timeout(1):
        with pytest.raises(BulkheadFull) as caught:
            async with bulkhead:
                pass
    assert caught.value.status == 503 and caught.value.headers["Retry-After"] == "1"
    gate.set()
    await asyncio.gather(*tasks)


async def test_bulkhead_without_waiting_room_refuses_when_full():
    """With max_waiting 0 (the default) a caller finding no free slot is refused immediately."""
    bulkhead = Bulkhead("up", max_concurrent=1, wait_timeout=30)
    async with bulkhead:
        async with asyncio.timeout(1):
            with pytest.raises(BulkheadFull):
                async with bulkhead:
                    pass
    assert bulkhead.active == 0


async def test_bulkhead_waiter_gives_up_after_wait_timeout():
    """A waiter that gets no slot within wait_timeout is refused with BulkheadFull and stops waiting."""
    bulkhead = Bulkhead("up", max_concurrent=1, max_waiting=5, wait_timeout=0.05)
    async with bulkhead:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(BulkheadFull, match="within"):
            async with bulkhead:
                pass
        assert loop.time() - started >= 0.04
        assert bulkhead.waiting == 0
    async with bulkhead:  # the timed-out waiter took no slot with it
        assert bulkhead.active == 1


async def test_bulkhead_releases_the_slot_when_the_call_raises():
    """A call that raises frees its slot, so the next caller gets in."""
    bulkhead = Bulkhead("up", max_concurrent=1)
    with pytest.raises(RuntimeError):
        async with bulkhead:
            raise RuntimeError("upstream broke")
    assert bulkhead.active == 0
    async with bulkhead:
        assert bulkhead.active == 1


async def test_bulkhead_cancelled_waiter_leaves_no_trace():
    """A waiter cancelled while waiting neither counts as waiting nor takes a slot."""
    bulkhead = Bulkhead("up", max_concurrent=1, max_waiting=1, wait_timeout=30)
    async with bulkhead:
        waiter = asyncio.create_task(bulkhead.__aenter__())
        async with asyncio.timeout(1):
            while bulkhead.waiting < 1:
                await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert bulkhead.waiting == 0
    assert bulkhead.active == 0
    async with asyncio.timeout(1), bulkhead:
        assert bulkhead.active == 1


async def test_bulkhead_requires_at_least_one_slot():
    """max_concurrent below 1 is a configuration error."""
    with pytest.raises(ValueError, match="max_concurrent"):
        Bulkhead("up", max_concurrent=0)


# --- SingleFlight ------------------------------------------------------------------------------


class Call:
    """A call that blocks until released, counting starts and recording cancellation."""

    def __init__(self, result: object = "value", error: BaseException | None = None) -> None:
        self.result = result
        self.error = error
        self.starts = 0
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.cancelled = asyncio.Event()
        self.unwound = asyncio.Event()
        self.unwound.set()
        self.finished = False

    async def __call__(self) -> object:
        self.starts += 1
        self.started.set()
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            await self.unwound.wait()  # cleanup on cancellation may take a while (closing a connection)
            raise
        self.finished = True
        if self.error is not None:
            raise self.error
        return self.result


async def _until_waiting(callers: int) -> None:
    """Let ``callers`` freshly created tasks reach their await."""
    for _ in range(callers + 2):
        await asyncio.sleep(0)


async def test_single_flight_shares_one_call_among_concurrent_callers():
    """Ten concurrent callers for one key run fn once and all get its result."""
    flight: SingleFlight[object] = SingleFlight()
    call = Call(result={"id": 1})
    tasks = [asyncio.create_task(flight.do("k", call)) for _ in range(10)]
    await call.started.wait()
    await _until_waiting(10)
    call.release.set()
    results = await asyncio.gather(*tasks)
    assert call.starts == 1
    assert all(r is call.result for r in results)


async def test_single_flight_delivers_the_exception_to_every_caller():
    """When the shared call raises, every waiting caller gets the exception."""
    flight: SingleFlight[object] = SingleFlight()
    call = Call(error=LookupError("gone"))
    tasks = [asyncio.create_task(flight.do("k", call)) for _ in range(5)]
    await call.started.wait()
    await _until_waiting(5)
    call.release.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert call.starts == 1
    assert all(isinstance(r, LookupError) for r in results)


async def test_single_flight_runs_different_keys_separately():
    """Callers for different keys do not share a call."""
    flight: SingleFlight[object] = SingleFlight()
    one, two = Call(result=1), Call(result=2)
    tasks = [asyncio.create_task(flight.do("a", one)), asyncio.create_task(flight.do("b", two))]
    await one.started.wait()
    await two.started.wait()
    one.release.set()
    two.release.set()
    assert await asyncio.gather(*tasks) == [1, 2]


async def test_single_flight_cancelled_caller_does_not_cancel_the_call_for_others():
    """One caller leaving does not cancel the shared call; the others still get its result."""
    flight: SingleFlight[object] = SingleFlight()
    call = Call()
    leaving = asyncio.create_task(flight.do("k", call))
    staying = asyncio.create_task(flight.do("k", call))
    await call.started.wait()
    await _until_waiting(2)
    leaving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leaving
    assert not call.cancelled.is_set()
    call.release.set()
    assert await staying == "value"
    assert call.finished and call.starts == 1


async def test_single_flight_cancels_the_call_when_every_caller_left():
    """When all callers are cancelled the shared call is cancelled too, and the key is free again."""
    flight: SingleFlight[object] = SingleFlight()
    call = Call()
    callers = [asyncio.create_task(flight.do("k", call)) for _ in range(3)]
    await call.started.wait()
    await _until_waiting(3)
    for caller in callers:
        caller.cancel()
    await asyncio.gather(*callers, return_exceptions=True)
    async with asyncio.timeout(1):
        await call.cancelled.wait()
    await _until_waiting(1)
    assert not flight.in_flight("k")


async def test_single_flight_runs_fn_again_after_completion():
    """Once a call has finished, the next caller for the key starts a new one."""
    flight: SingleFlight[object] = SingleFlight()
    starts = 0

    async def load() -> int:
        nonlocal starts
        starts += 1
        count: int = starts
        return count

    assert await flight.do("k", load) == 1
    assert not flight.in_flight("k")
    assert await flight.do("k", load) == 2


async def test_single_flight_does_not_remember_a_failure():
    """After a call raised, the next caller for the key runs fn afresh."""
    flight: SingleFlight[object] = SingleFlight()
    outcomes: list[BaseException | str] = [LookupError("first"), "second"]

    async def load() -> str:
        outcome = outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    with pytest.raises(LookupError):
        await flight.do("k", load)
    assert await flight.do("k", load) == "second"


async def test_single_flight_caller_arriving_as_the_others_leave_gets_a_fresh_call():
    """A caller joining right after every earlier caller was cancelled is not handed their cancellation."""
    flight: SingleFlight[object] = SingleFlight()
    first = Call()
    first.unwound.clear()
    leaving = asyncio.create_task(flight.do("k", first))
    await first.started.wait()
    await _until_waiting(1)
    leaving.cancel()
    await asyncio.gather(leaving, return_exceptions=True)
    await first.cancelled.wait()  # the abandoned call is still unwinding when the next caller arrives
    second = Call(result="fresh")
    second.release.set()
    try:
        async with asyncio.timeout(1):
            assert await flight.do("k", second) == "fresh"
        assert second.starts == 1
    finally:
        first.unwound.set()


# --- retrying ----------------------------------------------------------------------------------


async def _always_failing(error: Exception, calls: list[int], *, on: object, attempts: int) -> None:
    """Run a retried block that raises ``error`` every time, counting the tries in ``calls``."""
    async for attempt in retrying(on=on, attempts=attempts):
        with attempt:
            calls.append(1)
            raise error


async def test_retrying_retries_the_named_exception_until_success():
    """A named, transient exception is retried, and the successful attempt's result is kept."""
    calls = 0
    async for attempt in retrying(on=ConnectionError, attempts=3):
        with attempt:
            calls += 1
            if calls < 3:
                raise ConnectionError("flaky")
    assert calls == 3


async def test_retrying_gives_up_after_attempts():
    """An exception that keeps coming is raised after exactly ``attempts`` tries."""
    calls: list[int] = []
    with pytest.raises(ConnectionError):
        await _always_failing(ConnectionError("down"), calls, on=ConnectionError, attempts=3)
    assert len(calls) == 3


async def test_retrying_honours_a_smaller_attempts():
    """``attempts`` is passed through: with attempts=2 only two tries are made."""
    calls: list[int] = []
    with stamina.set_testing(True, attempts=10, cap=True), pytest.raises(ConnectionError):
        await _always_failing(ConnectionError("down"), calls, on=ConnectionError, attempts=2)
    assert len(calls) == 2


async def test_retrying_does_not_retry_other_exceptions():
    """An exception that is not named in ``on`` propagates after the first try."""
    calls: list[int] = []
    with pytest.raises(ValueError, match="bad input"):
        await _always_failing(ValueError("bad input"), calls, on=ConnectionError, attempts=3)
    assert len(calls) == 1


async def test_retrying_accepts_several_exception_types():
    """``on`` may name a tuple of exception types, each of which is retried."""
    errors = [ConnectionError("a"), TimeoutError("b")]
    calls = 0
    async for attempt in retrying(on=(ConnectionError, TimeoutError), attempts=3):
        with attempt:
            calls += 1
            if errors:
                raise errors.pop(0)
    assert calls == 3


async def test_a_late_success_does_not_close_an_open_breaker():
    """A call admitted while closed that succeeds after the circuit opened leaves it open."""
    clock = FakeClock()
    breaker = _breaker(clock)
    slow = breaker.__aenter__()
    await slow  # admitted while closed
    await _fail(breaker, breaker.failure_threshold)
    assert breaker.state is State.OPEN
    await breaker.__aexit__(None, None, None)  # the slow call finally succeeds
    assert breaker.state is State.OPEN


async def test_a_late_failure_does_not_extend_the_open_period():
    """A failure reported after the circuit opened does not restart its reset timer."""
    clock = FakeClock()
    breaker = _breaker(clock)
    await breaker.__aenter__()
    await _fail(breaker, breaker.failure_threshold)
    opened_at = breaker.opened_at
    clock.now += 5
    await breaker.__aexit__(Upstream, Upstream(), None)
    assert breaker.opened_at == opened_at


async def test_single_flight_shares_at_most_max_keys_calls_and_runs_the_rest_unshared():
    """Past max_keys distinct keys in flight, a caller makes its own call: the table stays at the cap and
    every caller still gets its result."""
    flight: SingleFlight[object] = SingleFlight(max_keys=2)
    calls = {key: Call(result=key) for key in "abc"}
    tasks = [asyncio.ensure_future(flight.do(key, calls[key])) for key in "abc"]
    await _until_waiting(3)
    assert [flight.in_flight(key) for key in "abc"] == [True, True, False]
    assert all(call.starts == 1 for call in calls.values())
    for call in calls.values():
        call.release.set()
    assert await asyncio.gather(*tasks) == ["a", "b", "c"]
    assert not any(flight.in_flight(key) for key in "abc")
