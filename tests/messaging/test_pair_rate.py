"""The pair rate, as a property: whatever the recipients, latencies and number of workers, two sends to one
recipient never reach the API closer than the interval (workers with their own Redis connections, as in
separate processes, sharing one store)."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bastion.core.stores.redis import RedisStore, connect
from bastion.messaging.limits import Limits

INTERVAL = 0.05

jobs = st.lists(
    st.tuples(st.integers(0, 2), st.floats(0.0, 0.03), st.floats(0.0, 1.0)),  # recipient, latency, arrival point
    min_size=2,
    max_size=12,
)


async def run_workers(redis_url: str, work: list[tuple[int, float, float]], workers: int) -> dict[int, list[float]]:
    prefix = f"tpair{uuid.uuid4().hex[:8]}:"
    clients = [connect(redis_url, timeout=2.0) for _ in range(workers)]
    limits = [
        Limits(RedisStore(c, prefix=prefix), number_id="1", per_second=10_000, pair_interval=INTERVAL, hold=1.0)
        for c in clients
    ]
    queue: asyncio.Queue[tuple[int, float, float]] = asyncio.Queue()
    for item in work:
        queue.put_nowait(item)
    arrivals: dict[int, list[float]] = {}

    async def worker(mine: Limits) -> None:
        while not queue.empty():
            recipient, latency, point = await queue.get()
            phone = f"+1555700{recipient:04d}"
            while (wait := await mine.acquire(phone)) > 0:
                await asyncio.sleep(wait)
            started = time.monotonic()
            await asyncio.sleep(latency)  # the call; the API receives it somewhere inside it
            arrivals.setdefault(recipient, []).append(started + latency * point)
            await mine.done(phone)

    try:
        await asyncio.gather(*(worker(mine) for mine in limits))
    finally:
        for client in clients:
            await client.aclose()
    return arrivals


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(work=jobs, workers=st.integers(2, 4))
def test_two_sends_to_one_recipient_never_arrive_closer_than_the_interval(redis_url, work, workers):
    """Sorted arrival times per recipient are at least INTERVAL apart, across 2-4 workers."""
    arrivals = asyncio.run(run_workers(redis_url, work, workers))
    assert sum(len(times) for times in arrivals.values()) == len(work)
    for times in arrivals.values():
        ordered = sorted(times)
        # 2 ms of slack: Redis keeps expiry times in whole milliseconds
        assert all(b - a >= INTERVAL - 0.002 for a, b in itertools.pairwise(ordered)), ordered
