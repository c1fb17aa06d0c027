"""Bulkhead: bound the calls in flight to one upstream, so a slow upstream cannot take every worker
coroutine, socket and byte of memory with it::

    bulkhead = Bulkhead("anthropic", max_concurrent=64, max_waiting=128, wait_timeout=2.0)
    async with bulkhead:             # raises BulkheadFull (503) when full
        ...

A call waits for a slot at most ``wait_timeout`` seconds, and no more than ``max_waiting`` calls wait
at once; beyond either, it is refused at once rather than queued without bound. The calls inside and
waiting are the gauges ``bastion_bulkhead_in_use{bulkhead}`` and ``bastion_bulkhead_waiting{bulkhead}``
(summed over workers).
"""

from __future__ import annotations

import asyncio
from types import TracebackType

from bastion.core import metrics
from bastion.core.errors import BulkheadFull

_in_use = metrics.gauge("bulkhead_in_use", "Calls inside a bulkhead (holding a slot)", ("bulkhead",))
_waiting = metrics.gauge("bulkhead_waiting", "Calls waiting for a bulkhead slot", ("bulkhead",))


class Bulkhead:
    def __init__(self, name: str, *, max_concurrent: int, max_waiting: int = 0, wait_timeout: float = 1.0) -> None:
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be at least 1")
        self.name = name
        self.max_concurrent = max_concurrent
        self.max_waiting = max_waiting
        self.wait_timeout = wait_timeout
        self._slots = asyncio.Semaphore(max_concurrent)
        self.active = 0
        self.waiting = 0
        self._in_use = _in_use.labels(name)
        self._waiting = _waiting.labels(name)

    async def __aenter__(self) -> Bulkhead:
        if self._slots.locked():
            if self.waiting >= self.max_waiting:
                raise BulkheadFull(
                    f"{self.name} is at its limit of {self.max_concurrent} concurrent calls.",
                    retry_after=1.0,
                    extra={"upstream": self.name},
                )
            self.waiting += 1
            self._waiting.inc()
            try:
                # asyncio.timeout rather than wait_for: on 3.11, wait_for can lose a slot acquired at the
                # very moment the timeout fires
                async with asyncio.timeout(self.wait_timeout):
                    await self._slots.acquire()
            except TimeoutError:
                raise BulkheadFull(
                    f"No free slot for {self.name} within {self.wait_timeout}s.",
                    retry_after=1.0,
                    extra={"upstream": self.name},
                ) from None
            finally:
                self.waiting -= 1
                self._waiting.dec()
        else:
            await self._slots.acquire()
        self.active += 1
        self._in_use.inc()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.active -= 1
        self._in_use.dec()
        self._slots.release()
