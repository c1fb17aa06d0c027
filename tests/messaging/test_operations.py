"""Operations: the re-drive job (run through core's ``POST /cron/{job}``; the route itself is tested in
tests/core/test_cron.py), readiness, metrics and the per-attempt log line."""

from __future__ import annotations

import secrets

import sqlalchemy as sa

from bastion.messaging.models import MessageRow, OutboxRow
from bastion.messaging.schemas import SendMessage
from tests.conftest import serve
from tests.messaging.conftest import FAST, open_window, service_of
from tests.messaging.test_delivery import send, settled

PHONE = "+15551234567"
SECRET = secrets.token_urlsafe(32)


async def test_redrive_sends_a_message_whose_outbox_row_was_lost(make_messaging_app, fake):
    """An unsent message with no outbox row, idle for long: the job gives it a row back and it is sent."""
    app = make_messaging_app(messaging={"whatsapp": fake.settings(), **FAST}, cron_secret=SECRET)
    async with serve(app) as http:
        await open_window(app, PHONE)
        service = service_of(app)
        service.on_accept = None
        async with service.db.begin() as conn:  # as if a broker had lost it: no outbox row, an hour old
            ids = await service.enqueue(conn, "alice", SendMessage(to=PHONE, text="x"))
            await conn.execute(sa.delete(OutboxRow))
            await conn.execute(
                sa.update(MessageRow).values(
                    updated_at_ms=MessageRow.updated_at_ms - 3_600_000, send_at_ms=MessageRow.send_at_ms - 3_600_000
                )
            )
        ran = await http.post("/cron/messaging.redrive", headers={"Authorization": f"Bearer {SECRET}"})
        view = await settled(http, ids[0], "sent")
    assert ran.status_code == 200 and ran.json()["job"] == "messaging.redrive" and ran.json()["result"] == 1
    assert len(fake.received) == 1 and view["wamid"] == fake.received[0].wamid


async def test_readiness_warns_when_the_oldest_unsent_message_is_too_old(make_messaging_app):
    """The API unreachable for longer than the threshold: the messaging check warns in /health/detailed."""
    app = make_messaging_app(
        messaging={
            "whatsapp": {"base_url": "http://127.0.0.1:9"},
            **FAST,
            "max_attempts": 50,
            "oldest_unsent_alert_seconds": 0.2,
            "health_check": True,
        }
    )
    async with serve(app) as http:
        await open_window(app, PHONE)
        await send(http)
        before = (await http.get("/health/detailed")).json()
        import asyncio

        await asyncio.sleep(1.2)  # past the threshold and the health cache's second
        after = (await http.get("/health/detailed")).json()
    checks = {name: value for name, value in after["checks"].items() if name.startswith("messaging")}
    assert checks and all(c[0]["status"] == "warn" for c in checks.values()), after
    assert "PipelineUnhealthy" in str(checks)
    assert all(c[0]["status"] == "pass" for n, c in before["checks"].items() if n.startswith("messaging"))


async def test_each_attempt_logs_one_line_with_ids_and_outcome_but_no_text_or_full_phone(
    make_messaging_app, fake, logs
):
    """messaging.attempt: message id, attempt, outcome, a masked phone; never the text or the number."""
    app = make_messaging_app(messaging={"whatsapp": fake.settings(), **FAST})
    async with serve(app) as http:
        await open_window(app, PHONE)
        message_id = await send(http, text="the secret plan")
        await settled(http, message_id, "sent")
        metrics = (await http.get("/metrics")).text
    lines = [line for line in logs() if line.get("event") == "messaging.attempt"]
    assert len(lines) == 1 and lines[0]["message_id"] == message_id and lines[0]["outcome"] == "sent"
    everything = str(logs())
    assert "the secret plan" not in everything and PHONE not in everything and "5551234567" not in everything
    assert 'bastion_messaging_send_attempts_total{outcome="sent"}' in metrics
