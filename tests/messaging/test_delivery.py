"""Delivery through the embedded dispatcher against the fake Cloud API: every error class, by Meta's code."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import eventually, serve
from tests.messaging.conftest import ALICE, FAST, open_window
from tests.messaging.fake_whatsapp import Drop, Fail, ServerError, Slow

PHONE = "+15551234567"


async def send(http: httpx.AsyncClient, to: str = PHONE, text: str = "hello") -> str:
    answer = await http.post("/api/messages", json={"to": to, "text": text}, headers=ALICE)
    assert answer.status_code == 202, answer.text
    return str(answer.json()["id"])


async def settled(http: httpx.AsyncClient, message_id: str, *statuses: str, timeout: float = 10) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        view: dict[str, Any] = (await http.get(f"/api/messages/{message_id}", headers=ALICE)).json()
        return view if view["status"] in statuses else None

    found: dict[str, Any] = await eventually(check, timeout=timeout, interval=0.05)
    return found


def app_for(make_messaging_app, fake, **messaging: Any):
    return make_messaging_app(messaging={"whatsapp": fake.settings(), **FAST, **messaging})


async def test_an_accepted_message_is_sent_once_with_its_wamid_stored(make_messaging_app, fake):
    """accepted → queued → sent; the fake got Meta's text format once; the wamid is the fake's."""
    app = app_for(make_messaging_app, fake)
    async with serve(app) as http:
        await open_window(app, PHONE)
        view = await settled(http, await send(http), "sent")
    assert [e["status"] for e in view["timeline"]] == ["accepted", "queued", "sent"]
    [got] = fake.received
    assert view["wamid"] == got.wamid and view["attempts"] == 1
    assert got.payload == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": PHONE,
        "type": "text",
        "text": {"preview_url": False, "body": "hello"},
    }


async def test_templates_are_sent_in_metas_template_format(make_messaging_app, fake):
    """Name, language code and body parameters, in order."""
    app = app_for(make_messaging_app, fake)
    async with serve(app) as http:
        await http.post("/api/messaging/templates", json={"name": "order", "param_count": 2}, headers=ALICE)
        answer = await http.post(
            "/api/messages", json={"to": PHONE, "template": {"name": "order", "params": ["Asha", "42"]}}, headers=ALICE
        )
        await settled(http, answer.json()["id"], "sent")
    assert fake.received[0].payload["template"] == {
        "name": "order",
        "language": {"code": "en"},
        "components": [
            {"type": "body", "parameters": [{"type": "text", "text": "Asha"}, {"type": "text", "text": "42"}]}
        ],
    }


async def test_throttling_codes_are_retried_and_then_sent(make_messaging_app, fake):
    """4, 80007, 130429, 131056 (HTTP 429 or 400 alike): retried later, sent once in the end."""
    app = app_for(make_messaging_app, fake)
    async with serve(app) as http:
        await open_window(app, PHONE)
        fake.script(PHONE, Fail(4, 400), Fail(80007), Fail(130429), Fail(131056))
        view = await settled(http, await send(http), "sent")
    assert view["attempts"] == 5 and len(fake.received) == 1


async def test_transient_failures_are_retried_and_then_sent(make_messaging_app, fake):
    """A 502 from a proxy, Meta's code 2, a dropped connection: retried, then sent once."""
    app = app_for(make_messaging_app, fake)
    async with serve(app) as http:
        await open_window(app, PHONE)
        fake.script(PHONE, ServerError(502), Fail(2, 503), Drop())
        view = await settled(http, await send(http), "sent")
    assert view["attempts"] == 4 and len(fake.received) == 1


async def test_permanent_codes_fail_with_the_code_and_reason_and_are_not_retried(make_messaging_app, fake):
    """100, 131026, 131047, 190, 368: failed after one attempt, with Meta's code and message."""
    app = app_for(make_messaging_app, fake)
    codes = [100, 131026, 131047, 190, 368]
    phones = [f"+1555000{n:04d}" for n in range(len(codes))]
    async with serve(app) as http:
        ids = []
        for phone, code in zip(phones, codes, strict=True):
            await open_window(app, phone)
            fake.script(phone, Fail(code))
            ids.append(await send(http, phone))
        views = [await settled(http, message_id, "failed") for message_id in ids]
    assert [v["error_code"] for v in views] == codes
    assert all(v["attempts"] == 1 for v in views)
    assert views[1]["timeline"][-1] == {
        "status": "failed",
        "at": views[1]["timeline"][-1]["at"],
        "code": 131026,
        "reason": "(#131026) Message Undeliverable: (#131026) Message Undeliverable",
    }
    assert fake.received == []


async def test_quality_codes_fail_and_suppress_the_contact(make_messaging_app, fake):
    """131048 fails the message and suppresses the contact: the next accept is refused with 403."""
    app = app_for(make_messaging_app, fake)
    async with serve(app) as http:
        await open_window(app, PHONE)
        await http.post("/api/messaging/contacts", json={"phone": PHONE}, headers=ALICE)
        fake.script(PHONE, Fail(131048))
        view = await settled(http, await send(http), "failed")
        again = await http.post("/api/messages", json={"to": PHONE, "text": "again"}, headers=ALICE)
    assert view["error_code"] == 131048
    assert again.status_code == 403 and again.json()["code"] == "CONTACT_SUPPRESSED"


async def test_attempts_are_capped_and_the_message_fails_as_a_dead_letter(make_messaging_app, fake):
    """Throttled on every attempt: failed after max_attempts, saying so."""
    app = app_for(make_messaging_app, fake, max_attempts=3)
    async with serve(app) as http:
        await open_window(app, PHONE)
        fake.script(PHONE, *[Fail(130429)] * 5)
        view = await settled(http, await send(http), "failed")
    assert view["attempts"] == 3 and view["error_code"] == 130429
    assert view["error_reason"].startswith("3 attempts; last:")
    assert fake.received == []


async def test_a_slow_answer_past_the_timeout_is_retried(make_messaging_app, fake):
    """No answer within the timeout: retried (the documented window: the slow one may also have been sent)."""
    app = app_for(make_messaging_app, fake, whatsapp={**fake.settings(), "timeout_seconds": 0.3})
    async with serve(app) as http:
        await open_window(app, PHONE)
        fake.script(PHONE, Slow(1.0))
        view = await settled(http, await send(http), "sent")
    assert view["attempts"] == 2


async def test_scheduled_messages_wait_for_send_at(make_messaging_app, fake):
    """send_at in the future: nothing is sent before it, the message is sent after it."""
    import datetime as dt

    app = app_for(make_messaging_app, fake)
    async with serve(app) as http:
        await open_window(app, PHONE)
        when = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1.0)
        answer = await http.post(
            "/api/messages", json={"to": PHONE, "text": "later", "send_at": when.isoformat()}, headers=ALICE
        )
        await settled(http, answer.json()["id"], "sent")
    assert fake.received[0].at >= when.timestamp() - 0.01


async def test_a_slow_call_holds_one_slot_and_the_others_keep_going(make_messaging_app, fake):
    """One recipient's call takes 3 s: five messages accepted after it are sent meanwhile."""
    app = app_for(make_messaging_app, fake)
    async with serve(app) as http:
        await open_window(app, PHONE)
        fake.script(PHONE, Slow(3.0))
        slow = await send(http)
        others = []
        for n in range(5):
            phone = f"+1555800{n:04d}"
            await open_window(app, phone)
            others.append(await send(http, phone))
        for message_id in others:
            await settled(http, message_id, "sent", timeout=2.5)
        still = (await http.get(f"/api/messages/{slow}", headers=ALICE)).json()["status"]
        await settled(http, slow, "sent")
    assert still == "queued"
