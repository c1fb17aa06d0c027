"""The RabbitMQ path against the real broker, PostgreSQL and Redis, with ``bastion worker`` processes and the
fake Cloud API: delivery, wait-queue retries, the dead-letter queue, SIGKILL, SIGTERM, a cut connection, and
limits shared by two workers."""

from __future__ import annotations

import asyncio
import itertools
import signal
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bastion.app import create_app
from bastion.messaging.operations import dead_letters, replay
from bastion.settings import Settings
from tests.conftest import serve
from tests.messaging.conftest import ALICE, OPEN_LIMITS, open_window, principals
from tests.messaging.fake_whatsapp import Fail, Slow
from tests.messaging.test_delivery import settled
from tests.messaging.workers import Worker
from tests.tcp_proxy import TcpProxy

pytestmark = pytest.mark.slow


@pytest.fixture
async def stack(
    amqp_url: str, postgres_url: str, redis_url: str, fake: Any, make_settings: Callable[..., Settings], tmp_path: Path
) -> AsyncIterator[dict[str, Any]]:
    """Settings shared by the app and its workers: the real services, a private set of queues."""
    prefix = f"t.{uuid.uuid4().hex[:10]}"
    settings = make_settings(
        rate_limits=OPEN_LIMITS,
        database_url=postgres_url,
        redis_url=redis_url,
        amqp_url=amqp_url,
        auto_migrate=True,
        messaging={
            "whatsapp": fake.settings(),
            "retry_delays_seconds": [0.2],
            "poll_seconds": 0.05,
            "lease_seconds": 5,
            "pair_interval_seconds": 0,
            "queue_prefix": prefix,
        },
    )
    plain = {
        "database_url": postgres_url,
        "redis_url": redis_url,
        "redis_prefix": settings.redis_prefix,
        "amqp_url": amqp_url,
        "data_dir": str(tmp_path / "worker"),
        "auto_migrate": "false",
        "shutdown_grace_seconds": 10,
        "messaging": settings.messaging.model_dump(mode="json") | {"whatsapp": fake.settings()},
    }
    yield {"settings": settings, "env": plain, "tmp": tmp_path}
    import aio_pika

    connection = await aio_pika.connect(amqp_url)
    channel = await connection.channel()
    for name in [f"{prefix}.work", f"{prefix}.dead", f"{prefix}.wait.200", f"{prefix}.wait.1000"]:
        await channel.queue_delete(name)
    await connection.close()


def worker(stack: dict[str, Any], name: str = "w1", concurrency: int = 8, **messaging: Any) -> Worker:
    env = dict(stack["env"])
    if messaging:
        env["messaging"] = {**env["messaging"], **messaging}
    return Worker(env, stack["tmp"] / f"{name}.log", concurrency)


async def accept_many(http: Any, app: Any, phones: list[str]) -> list[str]:
    ids = []
    for phone in phones:
        await open_window(app, phone)
        answer = await http.post("/api/messages", json={"to": phone, "text": "hi"}, headers=ALICE)
        assert answer.status_code == 202, answer.text
        ids.append(answer.json()["id"])
    return ids


async def test_accepted_messages_are_relayed_consumed_and_sent(stack, fake):
    """accept → queued (published with a confirm) → sent by a worker process, once each."""
    app = create_app(stack["settings"], extra_modules=(principals,))
    one = worker(stack).start()
    try:
        async with serve(app) as http:
            ids = await accept_many(http, app, [f"+1555200{n:04d}" for n in range(20)])
            views = [await settled(http, i, "sent", timeout=30) for i in ids]
    finally:
        one.stop()
    assert all([e["status"] for e in v["timeline"]] == ["accepted", "queued", "sent"] for v in views)
    assert len(fake.received) == 20 and len({r.to for r in fake.received}) == 20


async def test_throttled_sends_wait_in_a_ttl_queue_and_come_back(stack, fake):
    """131056 twice: the message waits in the wait queue, returns to the work queue, and is sent."""
    app = create_app(stack["settings"], extra_modules=(principals,))
    fake.script("+15552100000", Fail(131056), Fail(131056))
    one = worker(stack).start()
    try:
        async with serve(app) as http:
            [message_id] = await accept_many(http, app, ["+15552100000"])
            view = await settled(http, message_id, "sent", timeout=30)
    finally:
        one.stop()
    assert view["attempts"] == 3 and len(fake.received) == 1


async def test_messages_out_of_attempts_are_parked_listed_and_replayed(stack, fake):
    """Throttled past max_attempts: failed and in the dead queue; list shows it; replay sends it."""
    settings = stack["settings"].model_copy(
        update={"messaging": stack["settings"].messaging.model_copy(update={"max_attempts": 2})}
    )
    app = create_app(settings, extra_modules=(principals,))
    fake.script("+15552200000", Fail(130429), Fail(130429))
    one = worker(stack, max_attempts=2).start()
    try:
        async with serve(app) as http:
            [message_id] = await accept_many(http, app, ["+15552200000"])
            failed = await settled(http, message_id, "failed", timeout=30)
            for _ in range(100):
                parked = await dead_letters(settings, 10)
                if parked:
                    break
                await asyncio.sleep(0.1)
            assert await replay(settings, set()) == 1
            view = await settled(http, message_id, "sent", timeout=30)
    finally:
        one.stop()
    assert failed["attempts"] == 2 and failed["error_code"] == 130429
    assert [p[0] for p in parked] == [message_id]
    assert view["status"] == "sent" and len(fake.received) == 1


async def test_a_worker_killed_mid_batch_loses_nothing_and_repeats_at_most_what_was_in_flight(stack, fake):
    """SIGKILL with sends in flight, a new worker: every message sent; repeats only within the window."""
    app = create_app(stack["settings"], extra_modules=(principals,))
    phones = [f"+1555300{n:04d}" for n in range(60)]
    for phone in phones:
        fake.script(phone, Slow(0.1))
    first = worker(stack, "first", concurrency=8).start()
    try:
        async with serve(app) as http:
            ids = await accept_many(http, app, phones)
            deadline = time.monotonic() + 30
            while len(fake.received) < 15 and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            first.signal(signal.SIGKILL)
            first.wait(10)
            killed_at = len(fake.received)
            second = worker(stack, "second", concurrency=8, lease_seconds=1).start()
            try:
                views = [await settled(http, i, "sent", timeout=60) for i in ids]
            finally:
                second.stop()
    finally:
        first.stop()
    sent = [r.to for r in fake.received]
    assert 15 <= killed_at < 60
    assert set(sent) == set(phones)
    repeats = len(sent) - len(set(sent))
    assert repeats <= 8  # at most the deliveries in flight at the kill (the documented window)
    assert {v["wamid"] for v in views} <= {r.wamid for r in fake.received}


async def test_sigterm_drains_in_flight_sends_and_exits_zero(stack, fake):
    """SIGTERM while sends are in flight: they finish and are recorded, the worker exits 0 in the grace."""
    app = create_app(stack["settings"], extra_modules=(principals,))
    phones = [f"+1555400{n:04d}" for n in range(4)]
    for phone in phones:
        fake.script(phone, Slow(1.0))
    one = worker(stack, concurrency=8).start()
    try:
        async with serve(app) as http:
            ids = await accept_many(http, app, phones)
            deadline = time.monotonic() + 30
            while fake.calls < 4 and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            started = time.monotonic()
            one.signal(signal.SIGTERM)
            code = await asyncio.to_thread(one.wait, 15)
            took = time.monotonic() - started
            views = [(await http.get(f"/api/messages/{i}", headers=ALICE)).json() for i in ids]
    finally:
        one.stop()
    assert code == 0 and took < 10
    assert [v["status"] for v in views] == ["sent"] * 4
    assert any(line.get("event") == "messaging.worker_draining" for line in one.lines())


async def test_a_cut_broker_connection_recovers_by_itself_and_loses_nothing(stack, fake, amqp_url):
    """The worker's connection to RabbitMQ is cut mid-batch and restored: every message is sent."""
    from urllib.parse import urlsplit

    target = urlsplit(amqp_url)
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 5672)
    await proxy.start()
    port = proxy.port
    env = dict(stack["env"])
    env["amqp_url"] = amqp_url.replace(f":{target.port or 5672}", f":{port}")
    app = create_app(stack["settings"], extra_modules=(principals,))
    phones = [f"+1555500{n:04d}" for n in range(40)]
    for phone in phones:
        fake.script(phone, Slow(0.05))
    one = Worker(env, stack["tmp"] / "cut.log", 4).start()
    try:
        async with serve(app) as http:
            ids = await accept_many(http, app, phones[:20])
            deadline = time.monotonic() + 30
            while len(fake.received) < 5 and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            await proxy.stop()  # the broker is unreachable for the worker
            ids += await accept_many(http, app, phones[20:])
            await asyncio.sleep(2.0)
            proxy.port = port
            await proxy.start()
            views = [await settled(http, i, "sent", timeout=60) for i in ids]
    finally:
        one.stop()
        await proxy.stop()
    assert len(views) == 40 and set(r.to for r in fake.received) == set(phones)


async def test_two_workers_share_the_pair_rate_and_the_throughput_limit(stack, fake):
    """Two processes, six messages to one recipient (0.5 s pair rate) and 30 to others (10/s): never closer
    than the pair interval to that recipient where the fake API receives them, 36 sends spread over at least
    2.6 s (one-second windows of 10, counted when a send starts)."""
    limits = {"pair_interval_seconds": 0.5, "throughput_per_second": 10}
    settings = stack["settings"].model_copy(update={"messaging": stack["settings"].messaging.model_copy(update=limits)})
    app = create_app(settings, extra_modules=(principals,))
    workers = [worker(stack, f"w{n}", concurrency=8, **limits).start() for n in range(2)]
    try:
        async with serve(app) as http:
            same = await accept_many(http, app, ["+15556000000"] * 6)
            others = await accept_many(http, app, [f"+1555601{n:04d}" for n in range(30)])
            for i in same + others:
                await settled(http, i, "sent", timeout=60)
    finally:
        for w in workers:
            w.stop()
    times = sorted(r.at for r in fake.sent_to("+15556000000"))
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(times) == 6 and min(gaps) >= 0.5
    arrivals = sorted(r.at for r in fake.received)
    assert len(arrivals) == 36 and arrivals[-1] - arrivals[0] >= 36 / 10 - 1.0  # 10 per second at most
    attempts = [sum(line.get("event") == "messaging.attempt" for line in w.lines()) for w in workers]
    assert all(n > 0 for n in attempts), attempts  # both processes sent


async def test_the_pipeline_check_fails_while_no_consumer_is_attached(stack):
    """No worker: "no consumer is attached"; a worker running: the check passes."""
    from bastion.messaging.operations import check_pipeline

    settings = stack["settings"]
    app = create_app(settings, extra_modules=(principals,))
    async with serve(app):  # migrates and declares nothing: the worker declares the queues
        one = worker(stack).start()
        try:
            for _ in range(200):
                if await check_pipeline(settings) is None:
                    break
                await asyncio.sleep(0.1)
            healthy = await check_pipeline(settings)
        finally:
            one.stop()
        for _ in range(100):
            unhealthy = await check_pipeline(settings)
            if unhealthy:
                break
            await asyncio.sleep(0.1)
    assert healthy is None
    assert unhealthy is not None and "no consumer" in unhealthy
