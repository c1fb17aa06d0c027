"""The status machine: every move it forbids is a 409 with the current status and changes nothing; a pass
works once, only in its window and only at its site."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.conftest import serve
from tests.visitors.conftest import GUARD, HOST, ROOT, invite, service, setup_site, window

ACTIONS = ("approve", "reject", "cancel", "check-in", "check-out")
ALLOWED = {
    "pending": {"approve", "reject", "cancel"},
    "approved": {"cancel", "check-in"},
    "checked_in": {"check-out"},
}
STATES = ("pending", "approved", "rejected", "cancelled", "checked_in", "checked_out", "no_show", "expired")


async def visit_in(http: Any, app: Any, world: Any, state: str) -> tuple[str, str | None]:
    """A visit brought to ``state`` through the API (and the jobs, for no_show and expired)."""
    if state in ("pending", "rejected", "expired"):
        body = {"visitor_id": world.visitor_id, "host_id": "hana", **window()}
        visit = (await http.post("/api/visits", json=body, headers=GUARD)).json()
        code = None
    else:
        visit = await invite(http, world)
        code = visit["pass_code"]
    scan = {"code": code or "x", "site_id": world.site_id}
    steps = {
        "rejected": ["reject"],
        "cancelled": ["cancel"],
        "checked_in": ["check-in"],
        "checked_out": ["check-in", "check-out"],
    }.get(state, [])
    for step in steps:
        headers = GUARD if step.startswith("check") else HOST
        answer = await http.post(f"/api/visits/{visit['id']}/{step}", json=scan, headers=headers)
        assert answer.status_code == 200, answer.text
    if state in ("no_show", "expired"):
        jobs = service(app, "visitors_jobs")
        jobs.clock = lambda: time.time() + 86_400
        assert await (jobs.no_shows() if state == "no_show" else jobs.expire()) == 1
    return visit["id"], code


@pytest.mark.parametrize("state", STATES)
async def test_every_forbidden_transition_is_a_409_with_the_current_status(make_visitors_app, state):
    """From each status, each action the machine does not allow: 409, the status in the body, nothing changed."""
    app = make_visitors_app()
    async with serve(app) as http:
        world = await setup_site(http)
        visit_id, code = await visit_in(http, app, world, state)
        assert (await http.get(f"/api/visits/{visit_id}", headers=ROOT)).json()["status"] == state
        for action in sorted(set(ACTIONS) - ALLOWED.get(state, set())):
            headers = GUARD if action.startswith("check") else HOST
            scan = {"code": code or "not-a-code", "site_id": world.site_id}
            answer = await http.post(f"/api/visits/{visit_id}/{action}", json=scan, headers=headers)
            assert answer.status_code == 409, (action, answer.text)
            problem = answer.json()
            assert problem["code"] == "VISIT_TRANSITION_NOT_ALLOWED" and problem["current_status"] == state
        assert (await http.get(f"/api/visits/{visit_id}", headers=ROOT)).json()["status"] == state


async def test_a_pass_used_twice_is_refused(make_visitors_app):
    """The second check-in with the same code is a 409 (checked_in); after check-out the code is dead."""
    async with serve(make_visitors_app()) as http:
        world = await setup_site(http)
        visit = await invite(http, world)
        scan = {"code": visit["pass_code"], "site_id": world.site_id}
        assert (await http.post(f"/api/visits/{visit['id']}/check-in", json=scan, headers=GUARD)).status_code == 200
        again = await http.post(f"/api/visits/{visit['id']}/check-in", json=scan, headers=GUARD)
        assert again.status_code == 409 and again.json()["current_status"] == "checked_in"
        assert (await http.post(f"/api/visits/{visit['id']}/check-out", json=scan, headers=GUARD)).status_code == 200
        third = await http.post(f"/api/visits/{visit['id']}/check-in", json=scan, headers=GUARD)
        assert third.status_code == 409 and third.json()["current_status"] == "checked_out"


async def test_a_wrong_code_is_refused_and_changes_nothing(make_visitors_app):
    """Another visit's code, or a made-up one: 403 PASS_INVALID; the visit stays approved."""
    async with serve(make_visitors_app()) as http:
        world = await setup_site(http)
        mine, other = await invite(http, world), await invite(http, world)
        for code in (other["pass_code"], "made-up-code"):
            scan = {"code": code, "site_id": world.site_id}
            answer = await http.post(f"/api/visits/{mine['id']}/check-in", json=scan, headers=GUARD)
            assert answer.status_code == 403 and answer.json()["code"] == "PASS_INVALID"
        assert (await http.get(f"/api/visits/{mine['id']}", headers=HOST)).json()["status"] == "approved"


async def test_a_pass_outside_its_window_is_refused(make_visitors_app):
    """Too early (tomorrow's visit) and too late (after its end): 403 PASS_OUTSIDE_WINDOW with the window."""
    app = make_visitors_app()
    async with serve(app) as http:
        world = await setup_site(http)
        tomorrow = await invite(http, world, **window(start_in_minutes=24 * 60))
        scan = {"code": tomorrow["pass_code"], "site_id": world.site_id}
        early = await http.post(f"/api/visits/{tomorrow['id']}/check-in", json=scan, headers=GUARD)
        assert early.status_code == 403 and early.json()["code"] == "PASS_OUTSIDE_WINDOW"
        assert "valid_from" in early.json()

        now = await invite(http, world, **window(start_in_minutes=-5, length_minutes=30))
        service(app, "visitors_visits").clock = lambda: time.time() + 3600
        scan = {"code": now["pass_code"], "site_id": world.site_id}
        late = await http.post(f"/api/visits/{now['id']}/check-in", json=scan, headers=GUARD)
        assert late.status_code == 403 and late.json()["code"] == "PASS_OUTSIDE_WINDOW"
        assert (await http.get(f"/api/visits/{now['id']}", headers=ROOT)).json()["status"] == "approved"


async def test_a_pass_at_another_site_is_refused(make_visitors_app):
    """A guard of site B scanning site A's pass at B's gate: 403 PASS_WRONG_SITE; at A's gate (no role): 404."""
    async with serve(make_visitors_app()) as http:
        world = await setup_site(http)
        other = (await http.post("/api/sites", json={"name": "Plant"}, headers=ROOT)).json()["id"]
        added = await http.post(
            f"/api/sites/{other}/members", json={"account_id": "bea", "role": "guard"}, headers=ROOT
        )
        assert added.status_code == 201
        visit = await invite(http, world)
        bea = {"Authorization": "Bearer user-bea"}
        at_b = {"code": visit["pass_code"], "site_id": other}
        answer = await http.post(f"/api/visits/{visit['id']}/check-in", json=at_b, headers=bea)
        assert answer.status_code == 403 and answer.json()["code"] == "PASS_WRONG_SITE"
        at_a = {"code": visit["pass_code"], "site_id": world.site_id}
        answer = await http.post(f"/api/visits/{visit['id']}/check-in", json=at_a, headers=bea)
        assert answer.status_code == 404
        host = await http.post(f"/api/visits/{visit['id']}/check-in", json=at_a, headers=HOST)
        assert host.status_code == 403 and host.json()["code"] == "VISITORS_ROLE_REQUIRED"
        assert (await http.get(f"/api/visits/{visit['id']}", headers=ROOT)).json()["status"] == "approved"


async def test_the_pass_code_is_stored_hashed(make_visitors_app):
    """The database holds the SHA-256 of the code, never the code."""
    import hashlib

    import sqlalchemy as sa

    from bastion.visitors.models import VisitRow

    app = make_visitors_app()
    async with serve(app) as http:
        world = await setup_site(http)
        visit = await invite(http, world)
        db = service(app, "visitors_visits").db
        async with db.engine.connect() as conn:
            row = (await conn.execute(sa.select(VisitRow).where(VisitRow.id == visit["id"]))).one()
    assert row.pass_hash == hashlib.sha256(visit["pass_code"].encode()).hexdigest()
    assert visit["pass_code"] not in str(tuple(row))


async def test_two_guards_scanning_one_pass_at_once_check_in_once(make_visitors_app):
    """Five check-ins of one pass at the same time: one 200, the others 409 (checked_in); one audit row."""
    import asyncio

    async with serve(make_visitors_app()) as http:
        world = await setup_site(http)
        visit = await invite(http, world)
        scan = {"code": visit["pass_code"], "site_id": world.site_id}
        answers = await asyncio.gather(
            *(http.post(f"/api/visits/{visit['id']}/check-in", json=scan, headers=GUARD) for _ in range(5))
        )
        trail = (await http.get(f"/api/sites/{world.site_id}/audit", headers=ROOT)).json()
    assert sorted(a.status_code for a in answers) == [200, 409, 409, 409, 409]
    assert [e["action"] for e in trail].count("checked_in") == 1


async def test_an_approval_whose_message_cannot_be_queued_changes_nothing(make_visitors_app):
    """The pass template is missing when the host approves a walk-up: 422, the visit stays pending with no pass."""
    import sqlalchemy as sa

    from bastion.messaging.models import TemplateRow

    app = make_visitors_app()
    async with serve(app) as http:
        world = await setup_site(http)
        body = {"visitor_id": world.visitor_id, "host_id": "hana", **window()}
        visit = (await http.post("/api/visits", json=body, headers=GUARD)).json()
        async with service(app, "visitors_visits").db.begin() as conn:
            await conn.execute(sa.delete(TemplateRow).where(TemplateRow.name == "visitor_pass"))
        answer = await http.post(f"/api/visits/{visit['id']}/approve", headers=HOST)
        assert answer.status_code == 422 and answer.json()["code"] == "TEMPLATE_UNKNOWN"
        assert (await http.get(f"/api/visits/{visit['id']}", headers=HOST)).json()["status"] == "pending"
        assert (await http.get("/api/messages", headers=ROOT)).json()["items"] == []
