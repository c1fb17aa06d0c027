"""cancel_on_disconnect: work awaited for a client stops when the client leaves, and only then."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bastion.core.disconnect import cancel_on_disconnect
from bastion.core.errors import ClientClosedRequest


class Channel:
    """An ASGI receive channel the test sends messages into."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def __call__(self) -> dict[str, Any]:
        return await self.queue.get()


async def test_work_that_finishes_returns_its_result():
    """Without a disconnect the work's own result comes back."""
    assert await cancel_on_disconnect(Channel(), asyncio.sleep(0, result="answer")) == "answer"


async def test_a_disconnect_cancels_the_work_and_raises_499():
    """When the client disconnects, the awaited work is cancelled and CLIENT_CLOSED_REQUEST is raised."""
    channel, started, cancelled = Channel(), asyncio.Event(), asyncio.Event()

    async def slow() -> str:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "never"

    call = asyncio.create_task(cancel_on_disconnect(channel, slow()))
    await started.wait()
    await channel.queue.put({"type": "http.disconnect"})
    with pytest.raises(ClientClosedRequest) as raised:
        await call
    assert cancelled.is_set() and raised.value.status == 499 and raised.value.code == "CLIENT_CLOSED_REQUEST"


async def test_a_cancellation_from_elsewhere_stays_a_cancellation():
    """Cancelled for another reason (the worker draining), the caller sees CancelledError, not a 499."""
    started = asyncio.Event()

    async def slow() -> None:
        started.set()
        await asyncio.Event().wait()

    call = asyncio.create_task(cancel_on_disconnect(Channel(), slow()))
    await started.wait()
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call


async def test_an_error_of_the_work_propagates():
    """The work's own exception reaches the caller unchanged."""

    async def failing() -> None:
        raise LookupError("from the work")

    with pytest.raises(LookupError, match="from the work"):
        await cancel_on_disconnect(Channel(), failing())
