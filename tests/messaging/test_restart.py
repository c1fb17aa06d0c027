"""Nothing lost, nothing sent twice: the embedded dispatcher across a restart, and the attempt lease."""

from __future__ import annotations

import asyncio
import datetime as dt

from bastion.messaging.module import make_delivery
from tests.conftest import serve
from tests.messaging.conftest import ALICE, FAST, open_window, service_of
from tests.messaging.fake_whatsapp import Slow
from tests.messaging.test_delivery import settled


async def test_messages_accepted_before_a_restart_are_sent_after_it_once_each(make_messaging_app, fake):
    """Twenty messages, some in flight and some not yet due at shutdown: each is sent exactly once."""
    settings = {"whatsapp": fake.settings(), **FAST}
    phones = [f"+1555100{n:04d}" for n in range(20)]
    first = make_messaging_app(messaging=settings)
    for phone in phones[:10]:
        fake.script(phone, Slow(0.3))
    async with serve(first) as http:
        later = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1.5)).isoformat()
        ids = []
        for n, phone in enumerate(phones):
            await open_window(first, phone)
            body = {"to": phone, "text": "hi"} if n < 10 else {"to": phone, "text": "hi", "send_at": later}
            ids.append((await http.post("/api/messages", json=body, headers=ALICE)).json()["id"])
        await asyncio.sleep(0.1)  # the first ten are in flight at the fake when the app stops
    assert len(fake.received) <= 10
    second = make_messaging_app(messaging=settings, data_dir=first.settings.data_dir)
    async with serve(second) as http:
        views = [await settled(http, message_id, "sent") for message_id in ids]
    assert sorted(r.to for r in fake.received) == sorted(phones)
    assert {v["wamid"] for v in views} == {r.wamid for r in fake.received}


async def test_two_deliveries_of_one_message_send_it_once(make_messaging_app, fake):
    """A redelivery racing the first attempt finds the lease; after the answer it finds the wamid."""
    app = make_messaging_app(messaging={"whatsapp": fake.settings(), **FAST, "poll_seconds": 60})
    async with serve(app) as http:
        await open_window(app, "+15551234567")
        service = service_of(app)
        service.on_accept = None  # the dispatcher stays asleep: this test drives the deliveries
        fake.script("+15551234567", Slow(0.3))
        message_id = (await http.post("/api/messages", json={"to": "+15551234567", "text": "x"}, headers=ALICE)).json()[
            "id"
        ]
        one = make_delivery(app.platform, app.settings.messaging, app.platform.store)
        two = make_delivery(app.platform, app.settings.messaging, app.platform.store)
        first, second = await asyncio.gather(one.deliver(message_id), two.deliver(message_id))
        third = await two.deliver(message_id)
    assert sorted([first.kind, second.kind]) == ["done", "retry"]
    assert third.kind == "done"
    assert len(fake.received) == 1
