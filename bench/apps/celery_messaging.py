"""The peer of bench/messaging.py: what Python teams write for this job. A FastAPI endpoint enqueues one Celery
task per message on the same RabbitMQ (publisher confirms on, late acknowledgement so a crash loses nothing),
and the task calls the same fake WhatsApp API.

    celery -A celery_messaging worker --concurrency 8 -Q $BENCH_CELERY_QUEUE    # the workers
    granian --interface asgi celery_messaging:api                              # the accept endpoint
"""

from __future__ import annotations

import os
from typing import Any

import httpx
from celery import Celery
from fastapi import FastAPI
from pydantic import BaseModel

QUEUE = os.environ.get("BENCH_CELERY_QUEUE", "bench.celery")
FAKE = os.environ.get("BENCH_FAKE_URL", "http://127.0.0.1:9")

celery = Celery("bench", broker=os.environ.get("BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//"))
celery.conf.update(
    task_default_queue=QUEUE,
    task_acks_late=True,  # acknowledged after the task ran: a killed worker's task is redelivered
    worker_prefetch_multiplier=1,
    broker_transport_options={"confirm_publish": True},
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
)
_client: httpx.Client | None = None


@celery.task(name="send_message", autoretry_for=(httpx.TransportError,), retry_backoff=True, max_retries=5)
def send_message(to: str, text: str) -> str:
    global _client
    if _client is None:
        _client = httpx.Client(base_url=FAKE, headers={"Authorization": "Bearer test-token"}, timeout=15)
    payload = {"messaging_product": "whatsapp", "to": to, "type": "text", "text": {"preview_url": False, "body": text}}
    response = _client.post("/v21.0/106540352242922/messages", json=payload)
    response.raise_for_status()
    return str(response.json()["messages"][0]["id"])


api = FastAPI()


class Send(BaseModel):
    to: str
    text: str


@api.post("/api/messages", status_code=202)
def accept(body: Send) -> dict[str, Any]:
    result = send_message.delay(body.to, body.text)
    return {"id": result.id, "status": "accepted"}
