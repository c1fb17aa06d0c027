"""Edges: a visitor without consent or who opted out gets no message but the visit goes on; a template the
site's owner never registered refuses the action and changes nothing; bad input is a 4xx problem."""

from __future__ import annotations

import time

import sqlalchemy as sa

from tests.conftest import serve
from tests.visitors.conftest import GUARD, HOST, ROOT, VISITOR_PHONE, invite, new_visitor, service, setup_site, window


async def test_no_consent_no_message_but_the_pass_is_issued(make_visitors_app):
    """A visitor without WhatsApp consent: approved, pass code in the answer, no message queued."""
    async with serve(make_visitors_app()) as http:
        world = await setup_site(http)
        visitor = await new_visitor(http, world.site_id, consent=None)
        visit = (await http.post("/api/visits", json={"visitor_id": visitor, **window()}, headers=HOST)).json()
        assert visit["status"] == "approved" and visit["pass_code"] and "message_id" not in visit
        assert (await http.get("/api/messages", headers=ROOT)).json()["items"] == []


async def test_an_opted_out_visitor_gets_no_message_and_the_visit_goes_on(make_visitors_app):
    """The visitor sent STOP (messaging's contact is opted out): the invitation is approved without a message."""
    from bastion.messaging.models import ContactRow

    app = make_visitors_app()
    async with serve(app) as http:
        world = await setup_site(http)
        now = int(time.time() * 1000)
        async with service(app, "visitors_visits").db.begin() as conn:
            await conn.execute(
                sa.insert(ContactRow).values(
                    id="c1", owner_id="root", phone=VISITOR_PHONE, opted_out_at_ms=now, created_at_ms=now
                )
            )
        visit = await invite(http, world)
        assert visit["status"] == "approved" and "message_id" not in visit


async def test_an_unregistered_template_refuses_the_invitation_and_changes_nothing(make_visitors_app):
    """A site whose owner registered no templates: 422 TEMPLATE_UNKNOWN, no visit, no audit row for it."""
    nora = {"Authorization": "Bearer admin-nora"}
    async with serve(make_visitors_app()) as http:
        site = (await http.post("/api/sites", json={"name": "Annex"}, headers=nora)).json()["id"]
        await http.post(f"/api/sites/{site}/members", json={"account_id": "hana", "role": "host"}, headers=nora)
        visitor = await new_visitor(http, site)
        answer = await http.post("/api/visits", json={"visitor_id": visitor, **window()}, headers=HOST)
        assert answer.status_code == 422 and answer.json()["code"] == "TEMPLATE_UNKNOWN"
        assert (await http.get("/api/visits", headers=nora)).json()["items"] == []
        actions = [e["action"] for e in (await http.get(f"/api/sites/{site}/audit", headers=nora)).json()]
        assert "invited" not in actions and "approved" not in actions


async def test_bad_input_is_a_clear_4xx(make_visitors_app):
    """A window that ends before it starts or in the past, an unknown visitor, a malformed body, an unknown
    upload kind, a check-in without a code, a bad limit: each a problem+json 4xx."""
    async with serve(make_visitors_app()) as http:
        world = await setup_site(http)
        w = window()
        cases = [
            (
                "POST",
                "/api/visits",
                {"visitor_id": world.visitor_id, "starts_at": w["ends_at"], "ends_at": w["starts_at"]},
            ),
            ("POST", "/api/visits", {"visitor_id": world.visitor_id, **window(start_in_minutes=-300)}),
            ("POST", "/api/visits", {"visitor_id": "nobody", **w}),
            ("POST", "/api/visits", {"visitor_id": world.visitor_id}),
            ("POST", "/api/visits/x/check-in", {"site_id": world.site_id}),
            ("PATCH", f"/api/visitors/{world.visitor_id}", {"phone": "12345"}),
            ("POST", "/api/sites", {"name": "Q", "quiet_start": "25:00", "quiet_end": "08:00"}),
            ("POST", "/api/sites", {"name": "Q", "quiet_start": "21:00"}),
        ]
        for method, path, body in cases:
            headers = ROOT if path == "/api/sites" else (GUARD if "check-in" in path else HOST)
            answer = await http.request(method, path, json=body, headers=headers)
            assert 400 <= answer.status_code < 500, (path, body, answer.text)
            assert answer.headers["content-type"].startswith("application/problem+json")
        malformed = await http.post(
            "/api/visits", content=b"{not json", headers={**HOST, "content-type": "application/json"}
        )
        assert malformed.status_code == 400
        assert (
            await http.put(f"/api/visitors/{world.visitor_id}/passport", content=b"x", headers=HOST)
        ).status_code == 404
        assert (await http.get("/api/visits", params={"limit": 0}, headers=HOST)).status_code in (400, 422)
        assert len((await http.get("/api/visits", headers=ROOT)).json()["items"]) == 0
