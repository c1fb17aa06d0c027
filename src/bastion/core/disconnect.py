"""Stop work nobody waits for: cancel an awaited call the moment the client disconnects.

    @post("/v1/chat/completions")
    async def chat(request: Request, ...) -> ChatCompletion:
        answer = await cancel_on_disconnect(request.receive, service.complete(data))   # 499 if the client left

For a handler that awaits something slow and costly (an upstream model call, a long query) after it has
read the request body. Once a response streams, Litestar's own disconnect listener does the same.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

from bastion.core.errors import ClientClosedRequest

T = TypeVar("T")


async def cancel_on_disconnect(receive: Any, work: Awaitable[T]) -> T:
    """Await ``work``, cancelling it the moment the client disconnects (then 499 CLIENT_CLOSED_REQUEST).

    ``receive`` is the request's ASGI receive channel. The body has been read by now, so the next message on
    it can only be ``http.disconnect``: one watcher task waits for it and cancels this task.
    """
    task = asyncio.current_task()
    assert task is not None
    left = False

    async def watch() -> None:
        nonlocal left
        while (await receive())["type"] != "http.disconnect":
            pass
        left = True
        task.cancel()

    watcher = asyncio.get_running_loop().create_task(watch())
    try:
        return await work
    except asyncio.CancelledError:
        if left and task.uncancel() == 0:
            raise ClientClosedRequest("The client disconnected; the work for it was cancelled.") from None
        raise
    finally:
        watcher.cancel()
