"""Single-flight: identical concurrent reads share one call instead of each hitting the store.

    flight: SingleFlight[Secret | None] = SingleFlight()
    secret = await flight.do(secret_id, lambda: repo.load(secret_id))

The first caller for a key starts the call as a task; callers arriving while it runs await the same
result (or exception). A caller that is cancelled (its client went away) does not cancel the call
for the others; the call is cancelled only when every caller has left. Only in-process: it saves
duplicate work, it is not a lock.

At most ``max_keys`` calls are shared at once (a flood of distinct keys must not grow the table without
bound); past that a caller simply makes its own call, which is what it would do without single-flight.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from functools import partial
from typing import Generic, TypeVar

T = TypeVar("T")


class SingleFlight(Generic[T]):
    def __init__(self, *, max_keys: int = 10_000) -> None:
        self.max_keys = max_keys
        self._calls: dict[Hashable, tuple[asyncio.Task[T], list[int]]] = {}

    def in_flight(self, key: Hashable) -> bool:
        return key in self._calls

    async def do(self, key: Hashable, fn: Callable[[], Awaitable[T]]) -> T:
        entry = self._calls.get(key)
        if entry is None and len(self._calls) >= self.max_keys:
            return await fn()
        if entry is None:
            task: asyncio.Task[T] = asyncio.ensure_future(fn())
            entry = (task, [0])
            self._calls[key] = entry
            task.add_done_callback(partial(self._forget, key))
        task, waiters = entry
        waiters[0] += 1
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            if not task.done() and waiters[0] == 1:
                task.cancel()
                self._forget(key, task)  # a caller arriving while it unwinds must not join a cancelled call
            raise
        finally:
            waiters[0] -= 1

    def _forget(self, key: Hashable, task: asyncio.Task[T]) -> None:  # called with the finished task
        current = self._calls.get(key)
        if current is not None and current[0] is task:
            del self._calls[key]
