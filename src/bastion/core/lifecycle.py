"""Start-up, readiness, drain and shutdown of one worker.

On SIGTERM the server stops listening and calls the app's shutdown, which calls :meth:`Lifecycle.drain`:

1. readiness turns false at once (``/health/ready`` answers 503), and ``shutdown_event`` is set, so
   open streams send their final event and end (see :func:`bastion.core.streaming.until_shutdown`);
   ``bastion serve`` does this in the signal handler already (:mod:`bastion.runner`), since neither
   server calls the app's shutdown before its connections have closed;
2. in-flight requests, and work registered with :meth:`Lifecycle.finish_on_drain` (a background job's run in
   progress), are waited for together, up to the grace period less a reserve for step 3;
3. background tasks are cancelled and the registered closers run in reverse order (pools, clients).

A periodic check logs a warning when the worker's resident memory passes ``memory_warn_mb``.
"""

from __future__ import annotations

import asyncio
import enum
import gc
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from bastion.core import metrics
from bastion.core.logging import flush as flush_logs
from bastion.core.logging import get_logger

log = get_logger("bastion.lifecycle")
Closer = Callable[[], Awaitable[None]]


class Phase(enum.Enum):
    STARTING = "starting"
    READY = "ready"
    DRAINING = "draining"
    STOPPED = "stopped"


class Lifecycle:
    def __init__(self, *, grace_seconds: float, memory_warn_mb: int = 512, memory_check_seconds: float = 30.0) -> None:
        self.grace_seconds = grace_seconds
        self.memory_warn_bytes = memory_warn_mb * 1024 * 1024
        self.memory_check_seconds = memory_check_seconds
        self.phase = Phase.STARTING
        self.started_at = time.time()
        self.in_flight = 0
        self._idle: asyncio.Event | None = None
        self._shutdown: asyncio.Event | None = None
        self._closers: list[tuple[str, Closer]] = []
        self._finishers: list[tuple[str, Closer]] = []
        self._subscribers: set[Callable[[], None]] = set()
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def ready(self) -> bool:
        return self.phase is Phase.READY

    @property
    def draining(self) -> bool:
        return self.phase in (Phase.DRAINING, Phase.STOPPED)

    @property
    def shutdown_event(self) -> asyncio.Event:
        """Set when the worker starts draining; long-lived responses watch it and finish."""
        if self._shutdown is None:
            self._shutdown = asyncio.Event()
        return self._shutdown

    def subscribe(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback`` when draining begins; returns the function that unsubscribes it."""
        self._subscribers.add(callback)
        return lambda: self._subscribers.discard(callback)

    def request_started(self) -> None:
        self.in_flight += 1

    def request_finished(self) -> None:
        self.in_flight -= 1
        if self.in_flight == 0 and self._idle is not None:
            self._idle.set()

    def on_close(self, name: str, closer: Closer) -> None:
        """Run ``closer`` at shutdown, after in-flight requests; closers run in reverse order."""
        self._closers.append((name, closer))

    def finish_on_drain(self, name: str, finisher: Closer) -> None:
        """Await ``finisher`` when draining, alongside the wait for in-flight requests and within the same grace
        period: background work in progress gets to finish before the tasks are cancelled."""
        self._finishers.append((name, finisher))

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run a background job for the life of the worker; it is cancelled at shutdown."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed", task=task.get_name(), exc_info=task.exception())

    async def start(self) -> None:
        self.spawn(self._sample(), "sampler")
        # Everything allocated so far (modules, the app, pools) lives as long as the worker: move it
        # out of the collector's sight, so that garbage collections scan only per-request objects
        # instead of walking the whole heap (Instagram's gc.freeze; measured in docs/benchmarks.md).
        gc.collect()
        gc.freeze()
        self.phase = Phase.READY
        log.info("worker ready", in_flight=self.in_flight)

    def begin_drain(self) -> None:
        """Turn readiness off and tell streams to finish; idempotent and safe from a signal handler."""
        if self.phase in (Phase.DRAINING, Phase.STOPPED):
            return
        self.phase = Phase.DRAINING
        self.shutdown_event.set()
        for callback in list(self._subscribers):
            try:
                callback()
            except Exception:
                log.exception("drain subscriber failed")
        log.info("draining", in_flight=self.in_flight, grace_seconds=self.grace_seconds)

    async def drain(self) -> None:
        """Wait for in-flight requests (within the grace period), then stop jobs and close resources."""
        began = time.monotonic()
        self.begin_drain()
        # Keep a reserve of the grace period for closing pools, so the whole shutdown fits in it.
        budget = max(0.1, self.grace_seconds - min(2.0, self.grace_seconds * 0.2))
        await self._finish_work(budget)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for name, closer in reversed(self._closers):
            try:
                await asyncio.wait_for(closer(), timeout=5.0)
            except Exception:
                log.exception("closing failed", resource=name)
        self.phase = Phase.STOPPED
        log.info("stopped", drain_seconds=round(time.monotonic() - began, 3))
        # Granian's workers leave through os._exit, which skips atexit: write the buffered lines now.
        flush_logs()

    async def _finish_work(self, budget: float) -> None:
        """Wait for in-flight requests and the finishers, all at once, for at most ``budget`` seconds."""
        waits: dict[asyncio.Future[Any], str] = {}
        if self.in_flight > 0:
            self._idle = asyncio.Event()
            waits[asyncio.ensure_future(self._idle.wait())] = "requests"
        for name, finisher in self._finishers:
            waits[asyncio.ensure_future(finisher())] = name
        if not waits:
            return
        done, pending = await asyncio.wait(waits, timeout=budget)
        for future in pending:
            future.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for future in done:
            if not future.cancelled() and future.exception() is not None:
                log.error("waiting for work to finish failed", work=waits[future], exc_info=future.exception())
        if self.in_flight > 0:
            log.warning("grace period over with requests in flight", in_flight=self.in_flight)
        unfinished = sorted(waits[f] for f in pending if waits[f] != "requests")
        if unfinished:
            log.warning("grace period over with background work in progress", work=unfinished)

    async def _sample(self) -> None:
        """Every second: the in-flight gauge (sampled rather than moved twice per request, which
        would cost every request two metric updates); every ``memory_check_seconds``: resident
        memory, with a warning when it passes the threshold."""
        warned = False
        next_memory_check = 0.0
        while True:
            metrics.in_flight.set(self.in_flight)
            now = time.monotonic()
            if now >= next_memory_check:
                next_memory_check = now + self.memory_check_seconds
                rss = metrics.update_process_metrics()  # one read of /proc: cheaper than a thread hop
                if rss > self.memory_warn_bytes and not warned:
                    log.warning(
                        "memory above threshold",
                        rss_mb=rss // 1_048_576,
                        threshold_mb=self.memory_warn_bytes // 1_048_576,
                    )
                    warned = True
                elif rss <= self.memory_warn_bytes * 0.9:
                    warned = False
            await asyncio.sleep(1.0)
