"""Visitor records: E.164 phones, consent (when and how), updates, and erasure of personal data and files."""

from __future__ import annotations

import io

import sqlalchemy as sa
from PIL import Image

from tests.conftest import serve
from tests.visitors.conftest import GUARD, HOST, ROOT, invite, service, setup_site


def jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(out, format="JPEG")
    return out.getvalue()


async def test_a_visitor_is_created_read_listed_and_updated(make_visitors_app):
    """Name, phone, consent at/method round-trip; PATCH changes only what it names; consent can be withdrawn."""
    async with serve(make_visitors_app()) as http:
        world = await setup_site(http)
        view = (await http.get(f"/api/visitors/{world.visitor_id}", headers=HOST)).json()
        assert view["phone"] == "+15551234567" and view["consent"]["method"] == "web form"
        assert view["consent"]["at"].startswith("2026-12-01T10:00:00")
        changed = await http.patch(f"/api/visitors/{world.visitor_id}", json={"name": "Vera V."}, headers=HOST)
        assert changed.json()["name"] == "Vera V." and changed.json()["phone"] == "+15551234567"
        withdrawn = await http.patch(f"/api/visitors/{world.visitor_id}", json={"consent": None}, headers=HOST)
        assert withdrawn.json()["consent"] is None
        listed = (await http.get("/api/visitors", headers=GUARD)).json()["items"]
        assert [v["id"] for v in listed] == [world.visitor_id]


async def test_bad_visitor_input_is_a_422_and_stores_nothing(make_visitors_app):
    """A phone that is not E.164, an unknown field, an empty name: 422, no visitor added."""
    async with serve(make_visitors_app()) as http:
        world = await setup_site(http)
        for body in (
            {"site_id": world.site_id, "name": "A", "phone": "0612345678"},
            {"site_id": world.site_id, "name": "A", "colour": "red"},
            {"site_id": world.site_id, "name": ""},
        ):
            answer = await http.post("/api/visitors", json=body, headers=HOST)
            assert answer.status_code in (400, 422) and answer.headers["content-type"].startswith(
                "application/problem+json"
            ), answer.text
        assert len((await http.get("/api/visitors", headers=ROOT)).json()["items"]) == 1


async def test_erasure_removes_personal_data_and_files_and_keeps_an_anonymous_audit(make_visitors_app):
    """DELETE by the site admin: photo and ID files gone from the data dir, name/phone/consent/purpose gone,
    the visit and the audit remain with ids only."""
    app = make_visitors_app()
    async with serve(app) as http:
        world = await setup_site(http)
        visit = await invite(http, world, purpose="Interview with Vera")
        for kind in ("photo", "id-document"):
            put = await http.put(
                f"/api/visitors/{world.visitor_id}/{kind}",
                content=jpeg(),
                headers={**HOST, "content-type": "image/jpeg"},
            )
            assert put.status_code == 204, put.text
        root = app.settings.data_dir / "visitors"
        files = [p for p in root.rglob("*") if p.is_file()]
        assert len(files) == 2
        assert (await http.delete(f"/api/visitors/{world.visitor_id}", headers=HOST)).status_code == 403
        assert (await http.delete(f"/api/visitors/{world.visitor_id}", headers=ROOT)).status_code == 204
        assert [p for p in root.rglob("*") if p.is_file()] == []
        view = (await http.get(f"/api/visitors/{world.visitor_id}", headers=ROOT)).json()
        assert view["erased"] and view["name"] is None and view["phone"] is None and view["consent"] is None
        assert not view["has_photo"] and not view["has_id_document"]
        assert (await http.get(f"/api/visitors/{world.visitor_id}/photo", headers=ROOT)).status_code == 404
        assert "purpose" not in (await http.get(f"/api/visits/{visit['id']}", headers=ROOT)).json()
        trail = (await http.get(f"/api/sites/{world.site_id}/audit", headers=ROOT)).json()
        assert trail[0]["action"] == "visitor_erased" and trail[0]["visitor_id"] == world.visitor_id

        from bastion.visitors.models import AuditRow, VisitorRow, VisitRow

        db = service(app, "visitors_people").db
        async with db.engine.connect() as conn:
            stored = [
                str(tuple(row))
                for table in (VisitorRow, VisitRow, AuditRow)
                for row in (await conn.execute(sa.select(table))).all()
            ]
    dump = " ".join(stored)
    assert "Vera" not in dump and "+15551234567" not in dump and "web form" not in dump
