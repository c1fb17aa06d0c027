"""One message's trace through the real messaging module (docs/architecture.md, "Tracing work that leaves the
request"): the POST, the outbox row, the relay's publish to the real RabbitMQ, the ``bastion worker`` process's
consumer and its WhatsApp call (Meta's fake receives the ``traceparent``) are one trace, and the status webhook's
span links to it; the embedded dispatcher continues the same trace; with tracing off nothing is stored or sent."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from bastion.app import create_app
from bastion.messaging.models import MessageRow
from bastion.settings import Settings
from tests.conftest import eventually, serve
from tests.messaging.conftest import FAST, OPEN_LIMITS, open_window, principals, service_of
from tests.messaging.fake_whatsapp import Fail, status_event
from tests.messaging.test_delivery import send, settled
from tests.messaging.test_webhooks import post_event
from tests.messaging.workers import Worker
from tests.observability.otlp import OtlpReceiver, ReceivedSpan

PHONE = "+15553210000"
PRODUCER, CONSUMER = 4, 5  # OTLP span kinds


async def deliver_and_report_read(app: Any, fake: Any) -> None:
    """Accept one message, wait until it is sent, then post Meta's signed "read" webhook for it."""
    async with serve(app) as http:
        await open_window(app, PHONE)
        message_id = await send(http, PHONE)
        await settled(http, message_id, "sent", timeout=30)
        (received,) = fake.received
        webhook = await post_event(http, fake.app_secret, status_event(received.wamid, "read", PHONE, 1_700_000_000))
        assert webhook.status_code == 200, webhook.text


def one(receiver: OtlpReceiver, name: str) -> ReceivedSpan:
    (span,) = receiver.named(name)
    return span


def assert_webhook_linked(receiver: OtlpReceiver, api: ReceivedSpan) -> None:
    status, request = one(receiver, "whatsapp.status"), one(receiver, "POST /webhooks/whatsapp")
    assert status.trace_id == request.trace_id != api.trace_id and status.parent_id == request.span_id
    assert status.links == [(api.trace_id, api.span_id)] and status.attributes["whatsapp.status"] == "read"


@pytest.mark.slow
async def test_one_trace_from_the_post_through_rabbitmq_and_the_worker_to_whatsapp_with_the_webhook_linked(
    amqp_url: str, postgres_url: str, redis_url: str, fake: Any, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    """API → outbox → relay publish → RabbitMQ → worker process → WhatsApp call: one trace, the retry after a
    throttled first call (through a TTL wait queue) included; the webhook links to it."""
    fake.script(PHONE, Fail(131056))
    prefix = f"t.{uuid.uuid4().hex[:10]}"
    async with OtlpReceiver() as receiver:
        otel = {"endpoint": receiver.endpoint, "sample_ratio": 1.0, "schedule_delay_ms": 50}
        settings = make_settings(
            rate_limits=OPEN_LIMITS,
            database_url=postgres_url,
            redis_url=redis_url,
            amqp_url=amqp_url,
            auto_migrate=True,
            otel=otel,
            messaging={"whatsapp": fake.settings(), **FAST, "pair_interval_seconds": 0, "queue_prefix": prefix},
        )
        env = {
            "database_url": postgres_url,
            "redis_url": redis_url,
            "redis_prefix": settings.redis_prefix,
            "amqp_url": amqp_url,
            "data_dir": str(tmp_path / "worker"),
            "auto_migrate": "false",
            "otel": otel | {"service_name": "bastion-worker"},
            "messaging": settings.messaging.model_dump(mode="json") | {"whatsapp": fake.settings()},
        }
        worker = Worker(env, tmp_path / "worker.log").start()
        try:
            await deliver_and_report_read(create_app(settings, extra_modules=(principals,)), fake)
            await eventually(
                lambda: len(receiver.named("upstream whatsapp")) == 2 and receiver.named("whatsapp.status"), 15
            )
        finally:
            worker.stop()
            await _delete_queues(amqp_url, prefix)

    api = one(receiver, "POST /api/messages")
    publish = one(receiver, "messaging.publish")
    assert publish.trace_id == api.trace_id and publish.parent_id == api.span_id
    assert publish.kind == PRODUCER and publish.service == "bastion-worker"
    assert publish.attributes["messaging.destination.name"] == f"{prefix}.work"
    processes = {s.parent_id: s for s in receiver.named("messaging.process")}
    throttled = processes[publish.span_id]  # the first delivery, then the one back from the wait queue
    retried = processes[throttled.span_id]
    calls = {s.parent_id: s for s in receiver.named("upstream whatsapp")}
    assert set(calls) == {throttled.span_id, retried.span_id} and len(processes) == 2
    for span in (throttled, retried, *calls.values()):
        assert span.trace_id == api.trace_id and span.service == "bastion-worker"
    assert throttled.kind == retried.kind == CONSUMER
    (received,) = fake.received
    assert received.traceparent is not None and received.traceparent.split("-")[1] == api.trace_id
    assert_webhook_linked(receiver, api)


async def test_the_embedded_dispatcher_continues_the_trace_into_the_whatsapp_call(
    fake: Any, make_settings: Callable[..., Settings]
) -> None:
    """Without RabbitMQ: API → outbox → dispatcher's CONSUMER span → WhatsApp call, one trace; webhook linked."""
    async with OtlpReceiver() as receiver:
        otel = {"endpoint": receiver.endpoint, "sample_ratio": 1.0, "schedule_delay_ms": 50}
        settings = make_settings(rate_limits=OPEN_LIMITS, otel=otel, messaging={"whatsapp": fake.settings(), **FAST})
        await deliver_and_report_read(create_app(settings, extra_modules=(principals,)), fake)
        await eventually(lambda: receiver.named("upstream whatsapp") and receiver.named("whatsapp.status"), 15)

    api, process, call = (one(receiver, n) for n in ("POST /api/messages", "messaging.process", "upstream whatsapp"))
    assert process.trace_id == call.trace_id == api.trace_id
    assert process.parent_id == api.span_id and process.kind == CONSUMER and call.parent_id == process.span_id
    assert receiver.named("messaging.publish") == []
    (received,) = fake.received
    assert received.traceparent is not None and received.traceparent.split("-")[1] == api.trace_id
    assert_webhook_linked(receiver, api)


async def test_with_tracing_off_no_trace_is_stored_or_sent(fake: Any, make_settings: Callable[..., Settings]) -> None:
    """No endpoint: the message's trace column stays NULL and Meta gets no traceparent."""
    settings = make_settings(rate_limits=OPEN_LIMITS, messaging={"whatsapp": fake.settings(), **FAST})
    app = create_app(settings, extra_modules=(principals,))
    await deliver_and_report_read(app, fake)
    async with service_of(app).db.engine.connect() as conn:
        stored = (await conn.execute(sa.select(MessageRow.trace))).scalars().all()
    assert stored == [None]
    assert [r.traceparent for r in fake.received] == [None]


async def _delete_queues(amqp_url: str, prefix: str) -> None:
    import aio_pika

    connection = await aio_pika.connect(amqp_url)
    channel = await connection.channel()
    for name in [f"{prefix}.work", f"{prefix}.dead", f"{prefix}.wait.50", f"{prefix}.wait.1000"]:
        await channel.queue_delete(name)
    await connection.close()
