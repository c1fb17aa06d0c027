"""Scoping: a host sees the visits it hosts, a guard its site's visits of today, an admin everything of its
site; anything else is 404. Sites and members are the site admin's."""

from __future__ import annotations

import time

from tests.conftest import serve
from tests.visitors.conftest import GUARD, HOST, OTHER_HOST, ROOT, invite, new_visitor, service, setup_site, window


async def test_a_host_reading_another_hosts_visit_gets_404(make_visitors_app):
    """Otto (a host of the same site) cannot read, approve or cancel Hana's visit, nor see it listed."""
    async with serve(make_visitors_app()) as http:
        world = await setup_site(http)
        visit = await invite(http, world)
        for method, path in (
            ("GET", f"/api/visits/{visit['id']}"),
            ("POST", f"/api/visits/{visit['id']}/cancel"),
            ("POST", f"/api/visits/{visit['id']}/approve"),
        ):
            answer = await http.request(method, path, headers=OTHER_HOST)
            assert answer.status_code == 404 and answer.json()["code"] == "VISIT_NOT_FOUND", (path, answer.text)
        assert (await http.get("/api/visits", headers=OTHER_HOST)).json()["items"] == []
        assert (await http.get(f"/api/visitors/{world.visitor_id}", headers=OTHER_HOST)).status_code == 404
        assert [v["id"] for v in (await http.get("/api/visits", headers=HOST)).json()["items"]] == [visit["id"]]


async def test_a_guard_sees_todays_visits_of_its_site_only(make_visitors_app):
    """Today's visit is listed for the guard; next week's is not (404 by id); the admin sees both."""
    async with serve(make_visitors_app()) as http:
        world = await setup_site(http)
        today = await invite(http, world)
        later = await invite(http, world, **window(start_in_minutes=7 * 24 * 60))
        listed = (await http.get("/api/visits", headers=GUARD)).json()["items"]
        assert [v["id"] for v in listed] == [today["id"]]
        assert (await http.get(f"/api/visits/{later['id']}", headers=GUARD)).status_code == 404
        admin = (await http.get("/api/visits", headers=ROOT)).json()["items"]
        assert {v["id"] for v in admin} == {today["id"], later["id"]}


async def test_nobody_outside_the_site_sees_anything(make_visitors_app):
    """An account with no role at the site: its visits, visitors, members and audit are 404 or empty."""
    stranger = {"Authorization": "Bearer user-zed"}
    async with serve(make_visitors_app()) as http:
        world = await setup_site(http)
        visit = await invite(http, world)
        assert (await http.get(f"/api/visits/{visit['id']}", headers=stranger)).status_code == 404
        assert (await http.get(f"/api/visitors/{world.visitor_id}", headers=stranger)).status_code == 404
        assert (await http.get(f"/api/sites/{world.site_id}/audit", headers=stranger)).status_code == 404
        assert (await http.get("/api/visitors", headers=stranger)).json()["items"] == []
        assert (await http.get("/api/sites", headers=stranger)).json() == []
        created = await http.post("/api/visitors", json={"site_id": world.site_id, "name": "X"}, headers=stranger)
        assert created.status_code == 404


async def test_only_site_admins_manage_members_and_read_the_audit(make_visitors_app):
    """A host adding a member or reading the audit: 403; a non-admin creating a site: 403."""
    async with serve(make_visitors_app()) as http:
        world = await setup_site(http)
        member = {"account_id": "eve", "role": "admin"}
        assert (await http.post(f"/api/sites/{world.site_id}/members", json=member, headers=HOST)).status_code == 403
        assert (await http.get(f"/api/sites/{world.site_id}/audit", headers=HOST)).status_code == 403
        assert (await http.post("/api/sites", json={"name": "Mine"}, headers=HOST)).status_code == 403
        again = await http.post(
            f"/api/sites/{world.site_id}/members", json={"account_id": "gus", "role": "guard"}, headers=ROOT
        )
        assert again.status_code == 409
        bad_zone = await http.post("/api/sites", json={"name": "X", "timezone": "Mars/Olympus"}, headers=ROOT)
        assert bad_zone.status_code == 422


async def test_visits_are_paged_with_a_cursor_and_filtered(make_visitors_app):
    """Five visits, pages of two (newest first, no repeats); filters by status, host and day."""
    app = make_visitors_app()
    async with serve(app) as http:
        world = await setup_site(http)
        ids = [(await invite(http, world))["id"] for _ in range(5)]
        seen, cursor = [], None
        while True:
            params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            page = (await http.get("/api/visits", params=params, headers=ROOT)).json()
            seen += [v["id"] for v in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == ids[::-1]
        await http.post(f"/api/visits/{ids[0]}/cancel", headers=HOST)
        cancelled = (await http.get("/api/visits", params={"status": "cancelled"}, headers=ROOT)).json()["items"]
        assert [v["id"] for v in cancelled] == [ids[0]]
        assert (await http.get("/api/visits", params={"host_id": "otto"}, headers=ROOT)).json()["items"] == []
        import datetime as dt
        from zoneinfo import ZoneInfo

        today = dt.datetime.fromtimestamp(time.time(), ZoneInfo("Europe/Paris")).date()
        on_day = (await http.get("/api/visits", params={"day": today.isoformat()}, headers=ROOT)).json()["items"]
        assert len(on_day) == 5
        next_year = (today + dt.timedelta(days=365)).isoformat()
        assert (await http.get("/api/visits", params={"day": next_year}, headers=ROOT)).json()["items"] == []
        assert (await http.get("/api/visits", params={"day": "yesterday"}, headers=ROOT)).status_code == 422
        assert service(app, "visitors_visits") is not None


async def test_a_blocked_visitor_cannot_be_invited(make_visitors_app):
    """The guard blocks a visitor: a new invitation is 403 VISITOR_BLOCKED; a host may not unblock."""
    async with serve(make_visitors_app()) as http:
        world = await setup_site(http)
        visitor = await new_visitor(http, world.site_id)
        blocked = await http.patch(f"/api/visitors/{visitor}", json={"blocked": True}, headers=GUARD)
        assert blocked.status_code == 200 and blocked.json()["blocked"] is True
        body = {"visitor_id": visitor, **window()}
        answer = await http.post("/api/visits", json=body, headers=HOST)
        assert answer.status_code == 403 and answer.json()["code"] == "VISITOR_BLOCKED"
        unblock = await http.patch(f"/api/visitors/{visitor}", json={"blocked": False}, headers=HOST)
        assert unblock.status_code == 403
