"""Retries with exponential backoff and jitter, through stamina, with the exception types always named.

    async for attempt in retrying(on=httpx.ConnectError, attempts=3, timeout=5.0):
        with attempt:
            response = await client.get(url)

Retry only what is transient and only where repeating is safe (an idempotent read, or a write the
upstream de-duplicates); ``on`` is required on purpose. In tests, ``stamina.set_testing(True)``
removes the waits.
"""

from __future__ import annotations

from typing import Any

import stamina


def retrying(
    *,
    on: Any,
    attempts: int = 3,
    timeout: float | None = 10.0,
    wait_initial: float = 0.1,
    wait_max: float = 2.0,
    wait_jitter: float = 0.5,
) -> Any:
    """stamina's ``retry_context`` with our defaults: few attempts, short waits, a total timeout."""
    return stamina.retry_context(
        on=on, attempts=attempts, timeout=timeout, wait_initial=wait_initial, wait_max=wait_max, wait_jitter=wait_jitter
    )
