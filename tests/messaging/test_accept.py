"""Accepting messages: validation before anything is stored, idempotency, batches, status reads, ownership."""

from __future__ import annotations

import sqlalchemy as sa

from bastion.messaging.models import InboundRow, MessageRow, OutboxRow, StatusRow
from tests.conftest import serve
from tests.messaging.conftest import ADMIN, ALICE, BOB, service_of

PHONE = "+15551234567"


async def open_window(app, phone: str = PHONE) -> None:
    service = service_of(app)
    async with service.db.begin() as conn:
        await conn.execute(
            sa.insert(InboundRow).values(
                wamid=f"wamid.in{phone}", from_phone=phone, kind="text", text="hi", at_ms=int(service.clock() * 1000)
            )
        )


async def counts(app) -> tuple[int, int, int]:
    async with service_of(app).db.engine.connect() as conn:
        found = [
            (await conn.execute(sa.select(sa.func.count()).select_from(t))).scalar_one()
            for t in (MessageRow.__table__, StatusRow.__table__, OutboxRow.__table__)
        ]
    return found[0], found[1], found[2]


async def test_text_inside_the_window_is_accepted_with_message_status_and_outbox_rows(make_messaging_app):
    """202 with the id once the message, its "accepted" status and its outbox row are committed."""
    app = make_messaging_app(messaging={"whatsapp": {"base_url": "http://127.0.0.1:9"}})
    async with serve(app) as http:
        await open_window(app)
        answer = await http.post("/api/messages", json={"to": PHONE, "text": "hello"}, headers=ALICE)
        assert answer.status_code == 202, answer.text
        body = answer.json()
        view = (await http.get(f"/api/messages/{body['id']}", headers=ALICE)).json()
    assert body["status"] == "accepted"
    assert view["timeline"][0]["status"] == "accepted" and view["to"] == PHONE


async def test_bad_input_is_refused_with_a_problem_and_stores_nothing(make_messaging_app):
    """Bad phone, too-long text, both text and template, unknown template, wrong parameter count: 422, no rows."""
    app = make_messaging_app(messaging={"whatsapp": {"base_url": "http://127.0.0.1:9"}})
    async with serve(app) as http:
        await open_window(app)
        await http.post("/api/messaging/templates", json={"name": "order", "param_count": 2}, headers=ALICE)
        cases = [
            ({"to": "5551234567", "text": "x"}, "VALIDATION_FAILED"),
            ({"to": "+0123", "text": "x"}, "VALIDATION_FAILED"),
            ({"to": PHONE, "text": "x" * 4097}, "VALIDATION_FAILED"),
            ({"to": PHONE, "text": "x", "template": {"name": "order"}}, "VALIDATION_FAILED"),
            ({"to": PHONE, "template": {"name": "nope"}}, "TEMPLATE_UNKNOWN"),
            ({"to": PHONE, "template": {"name": "order", "params": ["a"]}}, "TEMPLATE_PARAMS_MISMATCH"),
        ]
        for body, code in cases:
            answer = await http.post("/api/messages", json=body, headers=ALICE)
            assert answer.status_code == 422, (body, answer.text)
            assert answer.headers["content-type"].startswith("application/problem+json")
            assert answer.json()["code"] == code, answer.text
        assert await counts(app) == (0, 0, 0)


async def test_free_text_outside_the_window_is_refused_with_a_template_hint(make_messaging_app):
    """No inbound message in 24 hours: 422 OUTSIDE_24H_WINDOW naming templates; a template goes through."""
    app = make_messaging_app(messaging={"whatsapp": {"base_url": "http://127.0.0.1:9"}})
    async with serve(app) as http:
        refused = await http.post("/api/messages", json={"to": PHONE, "text": "hello"}, headers=ALICE)
        await http.post("/api/messaging/templates", json={"name": "welcome", "param_count": 1}, headers=ALICE)
        template = await http.post(
            "/api/messages", json={"to": PHONE, "template": {"name": "welcome", "params": ["Asha"]}}, headers=ALICE
        )
    assert refused.status_code == 422 and refused.json()["code"] == "OUTSIDE_24H_WINDOW"
    assert "template" in refused.json()["detail"]
    assert template.status_code == 202


async def test_opted_out_contacts_are_refused(make_messaging_app):
    """A contact who opted out gets nothing: 403 CONTACT_OPTED_OUT and no message row."""
    app = make_messaging_app(messaging={"whatsapp": {"base_url": "http://127.0.0.1:9"}})
    async with serve(app) as http:
        await open_window(app)
        await http.post("/api/messaging/contacts", json={"phone": PHONE, "consent_source": "web form"}, headers=ALICE)
        async with service_of(app).db.begin() as conn:
            await conn.execute(sa.text("UPDATE messaging_contact SET opted_out_at_ms = 1"))
        answer = await http.post("/api/messages", json={"to": PHONE, "text": "hello"}, headers=ALICE)
        contacts = (await http.get("/api/messaging/contacts", headers=ALICE)).json()
    assert answer.status_code == 403 and answer.json()["code"] == "CONTACT_OPTED_OUT"
    assert contacts[0]["opted_out"] is True and contacts[0]["consent_source"] == "web form"
    assert (await counts(app))[0] == 0


async def test_a_repeated_idempotency_key_returns_the_first_answer_and_a_different_body_is_422(make_messaging_app):
    """Same key and body: the same id, one message; same key, other body: 422 IDEMPOTENCY_KEY_REUSED."""
    app = make_messaging_app(messaging={"whatsapp": {"base_url": "http://127.0.0.1:9"}})
    async with serve(app) as http:
        await open_window(app)
        headers = {**ALICE, "Idempotency-Key": "k-1"}
        first = await http.post("/api/messages", json={"to": PHONE, "text": "hello"}, headers=headers)
        again = await http.post("/api/messages", json={"to": PHONE, "text": "hello"}, headers=headers)
        other = await http.post("/api/messages", json={"to": PHONE, "text": "bye"}, headers=headers)
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]
    assert other.status_code == 422 and other.json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert (await counts(app))[0] == 1


async def test_the_database_keeps_idempotency_when_the_fast_store_forgot_the_key(make_messaging_app):
    """A key whose record the store lost (a crash after the commit) still finds the first message."""
    app = make_messaging_app(messaging={"whatsapp": {"base_url": "http://127.0.0.1:9"}})
    async with serve(app) as http:
        await open_window(app)
        headers = {**ALICE, "Idempotency-Key": "k-2"}
        first = await http.post("/api/messages", json={"to": PHONE, "text": "hello"}, headers=headers)
        app.platform.store._data.clear()  # the in-memory idempotency records go, as after a crash
        again = await http.post("/api/messages", json={"to": PHONE, "text": "hello"}, headers=headers)
    assert again.status_code == 202 and again.json()["id"] == first.json()["id"]
    assert (await counts(app))[0] == 1


async def test_a_batch_accepts_every_recipient_or_none(make_messaging_app):
    """One template, per-recipient params; one bad recipient refuses the whole batch (naming it)."""
    app = make_messaging_app(messaging={"whatsapp": {"base_url": "http://127.0.0.1:9"}})
    async with serve(app) as http:
        await http.post("/api/messaging/templates", json={"name": "promo", "param_count": 1}, headers=ALICE)
        recipients = [{"to": f"+1555000{i:04d}", "params": [f"n{i}"]} for i in range(50)]
        ok = await http.post(
            "/api/messages/batch", json={"template": {"name": "promo"}, "recipients": recipients}, headers=ALICE
        )
        bad = await http.post(
            "/api/messages/batch",
            json={"template": {"name": "promo"}, "recipients": [*recipients, {"to": "nope", "params": ["x"]}]},
            headers=ALICE,
        )
    assert ok.status_code == 202 and len(set(ok.json()["ids"])) == 50
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "recipients[50]"
    assert (await counts(app))[0] == 50


async def test_batches_above_the_limit_are_refused(make_messaging_app):
    """More recipients than max_batch: 422, nothing stored."""
    app = make_messaging_app(messaging={"max_batch": 3, "whatsapp": {"base_url": "http://127.0.0.1:9"}})
    async with serve(app) as http:
        await http.post("/api/messaging/templates", json={"name": "promo"}, headers=ALICE)
        recipients = [{"to": f"+1555000{i:04d}"} for i in range(4)]
        answer = await http.post(
            "/api/messages/batch", json={"template": {"name": "promo"}, "recipients": recipients}, headers=ALICE
        )
    assert answer.status_code == 422
    assert (await counts(app))[0] == 0


async def test_users_see_their_own_messages_and_admins_see_all_with_cursor_pages(make_messaging_app):
    """Bob cannot read Alice's message (404); the list pages by cursor, newest first, and filters."""
    app = make_messaging_app(messaging={"whatsapp": {"base_url": "http://127.0.0.1:9"}})
    async with serve(app) as http:
        await open_window(app)
        ids = []
        for n in range(5):
            answer = await http.post("/api/messages", json={"to": PHONE, "text": f"m{n}"}, headers=ALICE)
            ids.append(answer.json()["id"])
        hidden = await http.get(f"/api/messages/{ids[0]}", headers=BOB)
        first = (await http.get("/api/messages", params={"limit": 2}, headers=ALICE)).json()
        second = (
            await http.get("/api/messages", params={"limit": 2, "cursor": first["next_cursor"]}, headers=ALICE)
        ).json()
        bobs = (await http.get("/api/messages", headers=BOB)).json()
        admins = (await http.get("/api/messages", params={"to": PHONE}, headers=ADMIN)).json()
        anonymous = await http.get("/api/messages")
    assert hidden.status_code == 404 and hidden.json()["code"] == "MESSAGE_NOT_FOUND"
    assert [m["id"] for m in first["items"] + second["items"]] == ids[::-1][:4]
    assert bobs["items"] == [] and len(admins["items"]) == 5
    assert anonymous.status_code == 401
