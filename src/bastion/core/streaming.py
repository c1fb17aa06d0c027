"""Long-lived responses that end cleanly when the worker drains.

    async def events():
        async for chunk in upstream_chunks():
            yield sse(chunk)

    body = until_shutdown(events(), lifecycle, final=[sse(error_json, event="error"), b"data: [DONE]\\n\\n"])

``until_shutdown`` passes the chunks through until the worker starts draining, then yields ``final``
and stops, closing the source (which cancels whatever the source was awaiting, e.g. an upstream
read), so an open stream ends well within the grace period instead of holding the worker.

It costs nothing per chunk: instead of racing every read against a shutdown future, the drain
cancels the streaming task only while it is waiting on the source (never while it is writing to the
client), and the generator turns that cancellation into its final events.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Protocol


class ShutdownSignal(Protocol):
    @property
    def draining(self) -> bool: ...

    def subscribe(self, callback: Callable[[], None]) -> Callable[[], None]: ...


async def until_shutdown(
    source: AsyncIterator[bytes], lifecycle: ShutdownSignal, final: Iterable[bytes] = ()
) -> AsyncIterator[bytes]:
    task = asyncio.current_task()
    waiting = False
    stopping = lifecycle.draining

    def stop() -> None:
        nonlocal stopping
        stopping = True
        if waiting and task is not None:
            task.cancel()

    unsubscribe = lifecycle.subscribe(stop)
    iterator = aiter(source)
    try:
        while not stopping:
            waiting = True
            try:
                chunk = await anext(iterator)
            except StopAsyncIteration:
                return
            except asyncio.CancelledError:
                if stopping and task is not None and task.uncancel() == 0:
                    break  # our own cancellation: the worker is draining
                raise
            finally:
                waiting = False
            yield chunk
        for chunk in final:
            yield chunk
    finally:
        if callable(unsubscribe):
            unsubscribe()
        closer = getattr(iterator, "aclose", None)
        if closer is not None:
            with contextlib.suppress(RuntimeError, asyncio.CancelledError, StopAsyncIteration):
                await closer()


def sse(data: bytes | str, event: str | None = None) -> bytes:
    """One server-sent event: ``data: ...\\n\\n`` (with ``event:`` when given)."""
    payload = data.encode() if isinstance(data, str) else data
    head = b"event: " + event.encode() + b"\n" if event else b""
    return head + b"".join(b"data: " + line + b"\n" for line in payload.split(b"\n")) + b"\n"
