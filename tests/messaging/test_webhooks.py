"""Webhooks from WhatsApp: handshake, signatures on the raw body, statuses in any order, de-duplication,
inbound messages opening the window, opt-out keywords, quality codes suppressing the contact."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import sqlalchemy as sa

from bastion.messaging.models import StatusRow, WebhookEventRow
from tests.conftest import serve
from tests.messaging.conftest import ALICE, FAST, open_window, service_of
from tests.messaging.fake_whatsapp import inbound_event, sign, status_event
from tests.messaging.test_delivery import send, settled

PHONE = "+15551234567"


async def post_event(http: httpx.AsyncClient, secret: str, payload: dict[str, Any]) -> httpx.Response:
    body = json.dumps(payload).encode()
    return await http.post(
        "/webhooks/whatsapp",
        content=body,
        headers={"Content-Type": "application/json", "X-Hub-Signature-256": sign(body, secret)},
    )


def app_for(make_messaging_app, fake):
    return make_messaging_app(messaging={"whatsapp": fake.settings(), **FAST})


async def test_the_handshake_echoes_the_challenge_only_for_the_verify_token(make_messaging_app, fake):
    """Right token: 200 with the challenge as the body; wrong or missing: 403."""
    async with serve(app_for(make_messaging_app, fake)) as http:
        ok = await http.get(
            "/webhooks/whatsapp",
            params={"hub.mode": "subscribe", "hub.verify_token": "verify-me", "hub.challenge": "1158201444"},
        )
        wrong = await http.get(
            "/webhooks/whatsapp", params={"hub.mode": "subscribe", "hub.verify_token": "nope", "hub.challenge": "1"}
        )
        missing = await http.get("/webhooks/whatsapp", params={"hub.mode": "subscribe", "hub.challenge": "1"})
    assert ok.status_code == 200 and ok.text == "1158201444"
    assert wrong.status_code == 403 and missing.status_code == 403


async def test_bad_or_missing_signatures_are_401_and_store_nothing(make_messaging_app, fake):
    """A signature over other bytes, with another secret, or none at all: 401, no event recorded."""
    app = app_for(make_messaging_app, fake)
    body = json.dumps(inbound_event("wamid.in1", PHONE, "STOP", int(time.time()))).encode()
    async with serve(app) as http:
        answers = [
            await http.post(
                "/webhooks/whatsapp", content=body, headers={"X-Hub-Signature-256": sign(body + b" ", fake.app_secret)}
            ),
            await http.post(
                "/webhooks/whatsapp", content=body, headers={"X-Hub-Signature-256": sign(body, "other-secret")}
            ),
            await http.post("/webhooks/whatsapp", content=body),
            await http.post("/webhooks/whatsapp", content=body, headers={"X-Hub-Signature-256": "sha1=abc"}),
        ]
        async with service_of(app).db.engine.connect() as conn:
            stored = (await conn.execute(sa.select(sa.func.count()).select_from(WebhookEventRow))).scalar_one()
    assert [a.status_code for a in answers] == [401, 401, 401, 401]
    assert all(a.json()["code"] == "WEBHOOK_SIGNATURE_INVALID" for a in answers)
    assert stored == 0


async def test_statuses_out_of_order_and_duplicated_never_move_backwards(make_messaging_app, fake):
    """read, then delivered, then sent again, each twice: the status is read; each appears once in history."""
    app = app_for(make_messaging_app, fake)
    async with serve(app) as http:
        await open_window(app, PHONE)
        message_id = await send(http)
        view = await settled(http, message_id, "sent")
        now = int(time.time())
        for status in ("read", "delivered", "sent", "read", "delivered"):
            answer = await post_event(http, fake.app_secret, status_event(view["wamid"], status, PHONE, now))
            assert answer.status_code == 200
        final = (await http.get(f"/api/messages/{message_id}", headers=ALICE)).json()
        async with service_of(app).db.engine.connect() as conn:
            history = (
                (
                    await conn.execute(
                        sa.select(StatusRow.status).where(StatusRow.message_id == message_id).order_by(StatusRow.id)
                    )
                )
                .scalars()
                .all()
            )
    assert final["status"] == "read"
    assert [e["status"] for e in final["timeline"]] == ["accepted", "queued", "sent", "delivered", "read"]
    assert list(history) == ["accepted", "queued", "sent", "read", "delivered", "sent"]  # each event once


async def test_a_failure_reported_after_sent_is_kept_with_its_code(make_messaging_app, fake):
    """Meta reports 131026 after "sent": the message is failed with the code, not shown as delivered."""
    app = app_for(make_messaging_app, fake)
    async with serve(app) as http:
        await open_window(app, PHONE)
        message_id = await send(http)
        view = await settled(http, message_id, "sent")
        await post_event(
            http, fake.app_secret, status_event(view["wamid"], "failed", PHONE, int(time.time()), code=131026)
        )
        final = (await http.get(f"/api/messages/{message_id}", headers=ALICE)).json()
    assert final["status"] == "failed" and final["error_code"] == 131026


async def test_quality_codes_in_a_status_suppress_the_contact(make_messaging_app, fake):
    """A failed status with 131049: later sends to that phone are refused."""
    app = app_for(make_messaging_app, fake)
    async with serve(app) as http:
        await open_window(app, PHONE)
        await http.post("/api/messaging/contacts", json={"phone": PHONE}, headers=ALICE)
        view = await settled(http, await send(http), "sent")
        await post_event(
            http, fake.app_secret, status_event(view["wamid"], "failed", PHONE, int(time.time()), code=131049)
        )
        again = await http.post("/api/messages", json={"to": PHONE, "text": "more"}, headers=ALICE)
    assert again.status_code == 403 and again.json()["code"] == "CONTACT_SUPPRESSED"


async def test_an_inbound_message_opens_the_window_and_is_stored_once(make_messaging_app, fake):
    """Before: text refused outside the window; after an inbound message (sent twice by Meta): accepted."""
    app = app_for(make_messaging_app, fake)
    async with serve(app) as http:
        before = await http.post("/api/messages", json={"to": PHONE, "text": "hi"}, headers=ALICE)
        event = inbound_event("wamid.inbound1", PHONE, "Hello!", int(time.time()))
        first = await post_event(http, fake.app_secret, event)
        repeat = await post_event(http, fake.app_secret, event)
        after = await http.post("/api/messages", json={"to": PHONE, "text": "hi"}, headers=ALICE)
    assert before.status_code == 422
    assert first.json() == {"applied": 1} and repeat.json() == {"applied": 0}
    assert after.status_code == 202


async def test_opt_out_keywords_opt_the_contact_out_and_start_opts_back_in(make_messaging_app, fake):
    """STOP (any case) refuses further sends with 403; START lifts it."""
    app = app_for(make_messaging_app, fake)
    async with serve(app) as http:
        await http.post("/api/messaging/templates", json={"name": "hello"}, headers=ALICE)
        body = {"to": PHONE, "template": {"name": "hello"}}
        await post_event(http, fake.app_secret, inbound_event("wamid.a", PHONE, " stop ", int(time.time())))
        refused = await http.post("/api/messages", json=body, headers=ALICE)
        await post_event(http, fake.app_secret, inbound_event("wamid.b", PHONE, "START", int(time.time())))
        allowed = await http.post("/api/messages", json=body, headers=ALICE)
    assert refused.status_code == 403 and refused.json()["code"] == "CONTACT_OPTED_OUT"
    assert allowed.status_code == 202


async def test_a_status_that_arrives_before_the_wamid_is_stored_is_applied_later(make_messaging_app, fake):
    """ "delivered" for a wamid Bastion has not stored yet waits, and is applied when the wamid is."""
    app = app_for(make_messaging_app, fake)
    async with serve(app) as http:
        await open_window(app, PHONE)
        wamid = "wamid.HBgL000000000001"  # the fake's first id
        await post_event(http, fake.app_secret, status_event(wamid, "delivered", PHONE, int(time.time())))
        message_id = await send(http)
        view = await settled(http, message_id, "delivered")
    assert view["wamid"] == wamid
