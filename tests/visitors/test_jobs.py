"""The jobs: reminders, expiry, no-shows, the morning digest and the retention purge; each once with two
instances up, and each at ``POST /cron/visitors.<job>`` behind the cron secret."""

from __future__ import annotations

import asyncio
import io
import time
from contextlib import AsyncExitStack
from typing import Any

from PIL import Image

from tests.conftest import eventually, serve
from tests.visitors.conftest import (
    CRON_SECRET,
    GUARD,
    HOST,
    HOST_PHONE,
    ROOT,
    VISITOR_PHONE,
    invite,
    service,
    setup_site,
    window,
)

CRON = {"Authorization": f"Bearer {CRON_SECRET}"}


def midday_zone() -> str:
    """A fixed-offset zone where it is now between 08:00 and 16:00 (the test must not straddle midnight)."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    for offset in range(-12, 15):
        name = f"Etc/GMT{-offset:+d}" if offset else "Etc/GMT"  # POSIX sign: Etc/GMT-2 is UTC+2
        if 8 <= dt.datetime.now(ZoneInfo(name)).hour < 16:
            return name
    raise AssertionError("some offset is always at midday")


def templates_sent(fake: Any, phone: str, name: str) -> list[Any]:
    return [r for r in fake.sent_to(phone) if r.payload.get("template", {}).get("name") == name]


async def test_reminders_and_the_digest_go_once_with_two_instances_up(make_visitors_app, fake):
    """Two apps on one database run the reminder and digest jobs at the same time (and again): the visitor
    gets one reminder, the host one digest naming the visitor."""
    first = make_visitors_app(fake, visitors={"digest_hour": 0})
    second = make_visitors_app(fake, visitors={"digest_hour": 0})
    async with AsyncExitStack() as stack:
        http = await stack.enter_async_context(serve(first))
        await stack.enter_async_context(serve(second))
        world = await setup_site(http, timezone=midday_zone())  # the visit in 30 minutes is today there
        await invite(http, world, **window(start_in_minutes=30))
        jobs = [service(app, "visitors_jobs") for app in (first, second)]
        for _ in range(2):
            await asyncio.gather(*(j.reminders() for j in jobs), *(j.digest() for j in jobs))

        async def delivered() -> bool:
            return bool(templates_sent(fake, VISITOR_PHONE, "visitor_reminder")) and bool(
                templates_sent(fake, HOST_PHONE, "visitor_digest")
            )

        await eventually(delivered, timeout=10)
        await asyncio.sleep(0.3)  # room for a duplicate to show up
    assert len(templates_sent(fake, VISITOR_PHONE, "visitor_reminder")) == 1
    [digest] = templates_sent(fake, HOST_PHONE, "visitor_digest")
    params = [p["text"] for p in digest.payload["template"]["components"][0]["parameters"]]
    assert params == ["HQ", "1", "Vera Visitor"]


async def test_expiry_and_no_shows_after_the_window(make_visitors_app):
    """A day later: the pending walk-up is expired, the approved invitation a no-show, the checked-in visit
    untouched; the audit names the system as the actor."""
    app = make_visitors_app()
    async with serve(app) as http:
        world = await setup_site(http)
        body = {"visitor_id": world.visitor_id, "host_id": "hana", **window()}
        pending = (await http.post("/api/visits", json=body, headers=GUARD)).json()
        approved = await invite(http, world)
        inside = await invite(http, world)
        scan = {"code": inside["pass_code"], "site_id": world.site_id}
        assert (await http.post(f"/api/visits/{inside['id']}/check-in", json=scan, headers=GUARD)).status_code == 200
        jobs = service(app, "visitors_jobs")
        assert (await jobs.expire(), await jobs.no_shows()) == (0, 0)  # not yet
        jobs.clock = lambda: time.time() + 86_400
        assert (await jobs.expire(), await jobs.no_shows()) == (1, 1)
        assert (await jobs.expire(), await jobs.no_shows()) == (0, 0)
        statuses = {v["id"]: v["status"] for v in (await http.get("/api/visits", headers=ROOT)).json()["items"]}
        trail = (await http.get(f"/api/sites/{world.site_id}/audit", headers=ROOT)).json()
    assert statuses == {pending["id"]: "expired", approved["id"]: "no_show", inside["id"]: "checked_in"}
    assert {(e["action"], e["actor_id"]) for e in trail[:2]} == {("expired", "system"), ("no_show", "system")}


async def test_the_purge_removes_files_after_the_retention_period(make_visitors_app):
    """Files stay while the last visit is recent; retention_days after it ended, they are deleted."""
    app = make_visitors_app(visitors={"retention_days": 30})
    out = io.BytesIO()
    Image.new("RGB", (16, 16)).save(out, format="PNG")
    async with serve(app) as http:
        world = await setup_site(http)
        await invite(http, world)
        put = await http.put(
            f"/api/visitors/{world.visitor_id}/photo",
            content=out.getvalue(),
            headers={**HOST, "content-type": "image/png"},
        )
        assert put.status_code == 204
        jobs = service(app, "visitors_jobs")
        assert await jobs.purge() == 0
        jobs.clock = lambda: time.time() + 31 * 86_400
        assert await jobs.purge() == 1
        view = (await http.get(f"/api/visitors/{world.visitor_id}", headers=HOST)).json()
    assert view["has_photo"] is False and view["name"] == "Vera Visitor"
    assert [p for p in (app.settings.data_dir / "visitors").rglob("*") if p.is_file()] == []


async def test_each_job_runs_at_its_cron_route_behind_the_secret(make_visitors_app):
    """Core's POST /cron/{job} runs every visitors job: 401 without the secret, 200 with it (the count in
    ``result``); messaging's jobs answer beside them; an unknown job is a 404."""
    app = make_visitors_app()
    async with serve(app) as http:
        assert (await http.post("/cron/visitors.expire")).status_code == 401
        wrong = {"Authorization": "Bearer " + "d" * 32}
        assert (await http.post("/cron/visitors.expire", headers=wrong)).status_code == 401
        for job in ("reminders", "expire", "no_shows", "digest", "purge"):
            answer = await http.post(f"/cron/visitors.{job}", headers=CRON)
            assert answer.status_code == 200, answer.text
            assert answer.json()["job"] == f"visitors.{job}" and answer.json()["result"] == 0
        assert (await http.post("/cron/messaging.redrive", headers=CRON)).status_code == 200
        assert (await http.post("/cron/visitors.nope", headers=CRON)).status_code == 404
