"""The whole gate flow on the messaging pipeline and the fake WhatsApp API: walk-up → host approves → pass on
WhatsApp → check-in → host told → check-out; the same with a host's invitation; quiet hours."""

from __future__ import annotations

from typing import Any

from tests.conftest import eventually, serve
from tests.visitors.conftest import (
    GUARD,
    HOST,
    HOST_PHONE,
    ROOT,
    VISITOR_PHONE,
    invite,
    setup_site,
    window,
)


async def sent(http: Any, message_id: str) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        view: dict[str, Any] = (await http.get(f"/api/messages/{message_id}", headers=ROOT)).json()
        return view if view["status"] == "sent" else None

    found: dict[str, Any] = await eventually(check, timeout=10, interval=0.05)
    return found


async def test_walk_up_approved_pass_on_whatsapp_check_in_host_told_check_out(make_visitors_app, fake):
    """A guard registers a walk-up; the host approves; the pass (with its code) reaches the visitor on
    WhatsApp; the guard checks in with that code; the host gets "arrived"; check-out ends the pass."""
    app = make_visitors_app(fake)
    async with serve(app) as http:
        world = await setup_site(http)
        body = {"visitor_id": world.visitor_id, "host_id": "hana", **window()}
        walk_up = await http.post("/api/visits", json=body, headers=GUARD)
        assert walk_up.status_code == 201, walk_up.text
        visit = walk_up.json()
        assert visit["status"] == "pending" and "pass_code" not in visit and "message_id" not in visit

        approved = (await http.post(f"/api/visits/{visit['id']}/approve", headers=HOST)).json()
        assert approved["status"] == "approved"
        await sent(http, approved["message_id"])
        [pass_message] = fake.sent_to(VISITOR_PHONE)
        template = pass_message.payload["template"]
        assert template["name"] == "visitor_pass"
        code = template["components"][0]["parameters"][3]["text"]
        assert code == approved["pass_code"]

        scan = {"code": code, "site_id": world.site_id}
        checked_in = await http.post(f"/api/visits/{visit['id']}/check-in", json=scan, headers=GUARD)
        assert checked_in.status_code == 200, checked_in.text
        assert checked_in.json()["status"] == "checked_in"
        await sent(http, checked_in.json()["message_id"])
        [arrival] = fake.sent_to(HOST_PHONE)
        assert arrival.payload["template"]["name"] == "visitor_arrived"
        assert [p["text"] for p in arrival.payload["template"]["components"][0]["parameters"]] == ["Vera Visitor", "HQ"]

        out = await http.post(f"/api/visits/{visit['id']}/check-out", json=scan, headers=GUARD)
        assert out.status_code == 200 and out.json()["status"] == "checked_out"
        trail = (await http.get(f"/api/sites/{world.site_id}/audit", headers=ROOT)).json()
    actions = [(e["action"], e["actor_id"]) for e in trail if e.get("visit_id") == visit["id"]]
    assert actions[::-1] == [("walk_up", "gus"), ("approved", "hana"), ("checked_in", "gus"), ("checked_out", "gus")]


async def test_a_hosts_invitation_is_approved_at_once_and_sends_the_pass(make_visitors_app, fake):
    """The host is the approver: its invitation is approved, the pass goes out in the same transaction."""
    app = make_visitors_app(fake)
    async with serve(app) as http:
        world = await setup_site(http)
        visit = await invite(http, world)
        assert visit["status"] == "approved" and visit["pass_code"]
        message = await sent(http, visit["message_id"])
    assert message["to"] == VISITOR_PHONE
    assert len(fake.sent_to(VISITOR_PHONE)) == 1


async def test_quiet_hours_delay_the_pass_instead_of_dropping_it(make_visitors_app, fake):
    """Approved inside the site's quiet hours: the message is accepted with send_at at their end, not sent now."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    now = dt.datetime.now(ZoneInfo("Europe/Paris"))
    start, end = now - dt.timedelta(hours=1), now + dt.timedelta(hours=1)
    quiet = {"quiet_start": start.strftime("%H:%M"), "quiet_end": end.strftime("%H:%M")}
    app = make_visitors_app(fake)
    async with serve(app) as http:
        world = await setup_site(http, **quiet)
        visit = await invite(http, world)
        message = (await http.get(f"/api/messages/{visit['message_id']}", headers=ROOT)).json()
        send_at = dt.datetime.fromisoformat(message["send_at"])
        expected = end.replace(second=0, microsecond=0)
        assert message["status"] == "accepted"
        assert abs((send_at - expected).total_seconds()) < 1
        import asyncio

        await asyncio.sleep(0.5)  # several dispatcher polls (FAST: 50 ms)
    assert fake.sent_to(VISITOR_PHONE) == []
