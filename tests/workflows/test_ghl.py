"""GoHighLevel end to end against a local fake speaking its wire format: sign-in, sync, tokens, limits, errors."""

from __future__ import annotations

import asyncio
import copy
import time
from typing import Any

import pytest
from sqlalchemy import select, update

from bastion.app import Bastion
from bastion.core.crypto import DecryptionError
from bastion.workflows.ghl.tokens import sealed_context
from bastion.workflows.models import ConnectionRow
from tests.conftest import serve
from tests.workflows.builders import corpus
from tests.workflows.conftest import db_of, ghl_sign_in

SQLITE = pytest.mark.parametrize("database", ["sqlite"], indirect=True)


async def connection(app: Bastion, resource: str = "loc_1") -> Any:
    async with db_of(app).session() as session:
        row = await session.scalar(select(ConnectionRow).where(ConnectionRow.resource_id == resource))
    assert row is not None
    return row


async def expire_tokens(app: Bastion) -> None:
    async with db_of(app).begin() as conn:
        await conn.execute(update(ConnectionRow).values(expires_at_ms=0))


async def test_sign_in_list_structure_analyse_history_diff_export(ghl_app, ghl):
    """The whole journey through GHL: sign in, list (synced), structure, analyse, a new version, diff, export."""
    app = ghl_app()
    async with serve(app) as http:
        csrf = await ghl_sign_in(http)
        status = (await http.get("/auth/status")).json()
        listed = (await http.get("/api/workflows")).json()
        by_name = {w["name"]: w for w in listed}
        wid = by_name["Broken lead flow"]["id"]
        structure = (await http.get(f"/api/workflows/{wid}/structure")).json()
        first = (await http.post("/api/analyze", json={"workflowId": wid}, headers=csrf)).json()
        fixed = copy.deepcopy(ghl.locations["loc_1"].workflows[1])
        fixed["actions"][2]["config"]["headers"] = {"Authorization": "Bearer {{custom_values.key}}"}
        fixed["version"] = 2
        ghl.locations["loc_1"].workflows[1] = fixed
        relisted = {w["name"]: w for w in (await http.get("/api/workflows")).json()}
        second = (await http.post("/api/analyze", json={"workflowId": wid}, headers=csrf)).json()
        history = (await http.get("/api/history")).json()
        diff = (await http.get(f"/api/analysis/{second['id']}/diff", params={"base": first["id"]})).json()
        sarif = await http.get(f"/api/analysis/{second['id']}/export", params={"format": "sarif"})
    assert status["user"]["email"] == "dana@agency.example"
    assert len(by_name) == 2 and "Broken lead flow" in by_name
    assert {w["source"] for w in listed} == {"ghl"} and {w["locationId"] for w in listed} == {"loc_1"}
    assert [s["id"] for s in structure["steps"]] == ["a1", "a2", "h1", "x1"] and structure["unknownTypes"] == [
        "teleport"
    ]
    assert first["hiddenIssues"] > 0 and len(first["issues"]) == 3  # a GHL sign-in starts on the free plan
    assert relisted["Broken lead flow"]["version"] == 2 and second["workflowVersion"] == 2
    assert [i["id"] for i in history["items"]] == [second["id"], first["id"]]
    assert diff["fixed"]["total"] == 1 and diff["new"]["total"] == 0
    assert sarif.status_code == 200 and sarif.json()["version"] == "2.1.0"
    assert ghl.hits["/workflows/"] == 2 and ghl.hits["/workflows/wf_broken"] == 2  # the new version fetched again


@SQLITE
async def test_tokens_are_sealed_to_their_row_and_location(ghl_app, ghl):
    """Stored tokens are ciphertext; they decrypt only with their own row and location as associated data."""
    app = ghl_app()
    async with serve(app) as http:
        await ghl_sign_in(http)
        row = await connection(app)
    keyring = app.platform.keyring
    live = next(t for t, i in ghl.access.items() if i.resource == "loc_1")
    assert row.access_token is not None and live.encode() not in row.access_token
    assert keyring.decrypt(row.access_token, context=sealed_context(row.id, "loc_1", "access")).decode() == live
    for wrong in (sealed_context(row.id, "loc_2", "access"), sealed_context("other-row", "loc_1", "access"),
                  sealed_context(row.id, "loc_1", "refresh")):  # fmt: skip
        with pytest.raises(DecryptionError):
            keyring.decrypt(row.access_token, context=wrong)


@SQLITE
async def test_a_token_copied_to_another_location_asks_to_reconnect(ghl_app, ghl):
    """A ciphertext moved to another location's row does not decrypt: the user is asked to reconnect (403)."""
    app = ghl_app()
    ghl.add_location("loc_2", "Second Street")
    async with serve(app) as http:
        await ghl_sign_in(http)
        ghl.chosen_location = "loc_2"
        await ghl_sign_in(http)
        one = await connection(app, "loc_1")
        async with db_of(app).begin() as conn:
            await conn.execute(
                update(ConnectionRow).where(ConnectionRow.resource_id == "loc_2").values(access_token=one.access_token)
            )
        r = await http.get("/api/workflows")
    assert (r.status_code, r.json()["code"]) == (403, "GHL_RECONNECT_REQUIRED")


@SQLITE
async def test_refresh_rotates_and_keeps_the_new_pair(ghl_app, ghl):
    """An expiring token is refreshed once; the rotated refresh token is the one stored (the old one is dead)."""
    app = ghl_app()
    async with serve(app) as http:
        await ghl_sign_in(http)
        await expire_tokens(app)
        first = await http.get("/api/workflows")
        second = await http.get("/api/workflows")
        row = await connection(app)
    stored = app.platform.keyring.decrypt(
        row.refresh_token, context=sealed_context(row.id, "loc_1", "refresh")
    ).decode()
    assert first.status_code == second.status_code == 200
    assert ghl.refreshes == {"loc_1": 1}
    assert stored in ghl.refresh and row.token_version >= 2


@SQLITE
async def test_a_rejected_refresh_asks_to_reconnect_never_500(ghl_app, ghl):
    """GHL refusing the refresh token (revoked): 403 GHL_RECONNECT_REQUIRED, now and on the next request."""
    app = ghl_app()
    async with serve(app) as http:
        await ghl_sign_in(http)
        ghl.refresh.clear()
        await expire_tokens(app)
        answers = [await http.get("/api/workflows") for _ in range(2)]
    assert [(a.status_code, a.json()["code"]) for a in answers] == [(403, "GHL_RECONNECT_REQUIRED")] * 2
    assert ghl.rejected_refreshes == 1  # marked once; the second request does not try a dead token again


@SQLITE
async def test_uninstalled_location_asks_to_reconnect(ghl_app, ghl):
    """After the app is uninstalled from the location its tokens are gone: 403, not 500."""
    app = ghl_app()
    async with serve(app) as http:
        await ghl_sign_in(http)
        await app.litestar.dependencies["workflows"].dependency().source.disconnect("loc_1")
        r = await http.get("/api/workflows")
        row = await connection(app)
    assert (r.status_code, r.json()["code"]) == (403, "GHL_RECONNECT_REQUIRED")
    assert row.access_token is None and row.refresh_token is None


@SQLITE
async def test_definition_not_enabled_sends_to_import(ghl_app, ghl):
    """GHL's 403 WORKFLOW_API_NOT_ENABLED_FOR_LOCATION: a 422 that points to the JSON import."""
    ghl.locations["loc_1"].definitions_enabled = False
    app = ghl_app()
    async with serve(app) as http:
        csrf = await ghl_sign_in(http)
        wid = (await http.get("/api/workflows")).json()[0]["id"]
        r = await http.post("/api/analyze", json={"workflowId": wid}, headers=csrf)
    assert (r.status_code, r.json()["code"]) == (422, "WORKFLOW_DEFINITION_UNAVAILABLE")
    assert "/api/workflows/import" in r.json()["detail"]


@SQLITE
async def test_a_ghl_429_is_retried_after_its_retry_after(ghl_app, ghl):
    """One 429 with Retry-After: 1 from GHL is waited out and retried; the list arrives."""
    app = ghl_app()
    async with serve(app) as http:
        await ghl_sign_in(http)
        ghl.behaviour["/workflows/"] = "429-once"
        r = await http.get("/api/workflows")
    assert r.status_code == 200 and len(r.json()) == 2
    assert ghl.hits["/workflows/"] == 2


@SQLITE
async def test_our_count_keeps_under_ghl_burst_limit(ghl_app, ghl):
    """With 3 requests per window allowed, the 4th call is refused here (429 with Retry-After), never sent."""
    app = ghl_app({"ghl_requests_per_window": 3, "ghl_window_seconds": 60})
    async with serve(app) as http:
        await ghl_sign_in(http)
        codes = [(await http.get("/api/workflows")).status_code for _ in range(4)]
        last = await http.get("/api/workflows")
    assert codes == [200, 200, 200, 429]
    assert last.json()["code"] == "GHL_RATE_LIMITED" and float(last.headers["retry-after"]) > 0
    assert ghl.hits["/workflows/"] == 3


@SQLITE
@pytest.mark.parametrize("mode", ["html500", "drop", "slow"])
async def test_ghl_failing_is_a_502_or_504_with_a_code(ghl_app, ghl, mode):
    """GHL answering an HTML 500, dropping the connection, or too slowly: a problem with a stable code, not a 500."""
    app = ghl_app({"ghl_timeout_seconds": 0.5})
    async with serve(app) as http:
        await ghl_sign_in(http)
        if mode == "slow":
            ghl.delay["/workflows/"] = 2.0
        else:
            ghl.behaviour["/workflows/"] = mode
        r = await http.get("/api/workflows")
    assert r.status_code in (502, 504), r.text
    assert r.json()["code"] in ("GHL_UNAVAILABLE", "GATEWAY_TIMEOUT")


@pytest.mark.parametrize("database", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
async def test_two_instances_refreshing_one_location_refresh_once(ghl_app, ghl):
    """Two app instances on one database, three requests each, all needing a refresh at once: GHL sees one."""
    first, second = ghl_app(), ghl_app()
    async with serve(first) as a, serve(second) as b:
        await ghl_sign_in(a)
        b.cookies.update(a.cookies)
        await expire_tokens(first)
        ghl.delay["/oauth/token"] = 0.3  # a slow token endpoint: the requests overlap the refresh
        answers = await asyncio.gather(*(client.get("/api/workflows") for client in (a, b, a, b, a, b)))
    assert [r.status_code for r in answers] == [200] * 6
    assert ghl.refreshes == {"loc_1": 1} and ghl.rejected_refreshes == 0


@SQLITE
async def test_agency_connects_its_locations_and_summarises(ghl_app, ghl):
    """A company sign-in lists its locations, mints a token for each, syncs both, and sums up the worst grades."""
    ghl.add_location("loc_2", "Second Street", corpus()["appointment_reminders"])
    app = ghl_app()
    async with serve(app) as http:
        csrf = await ghl_sign_in(http, "ghl-agency")
        company = await connection(app, "cmp_1")
        locations = (await http.post("/api/agency/locations", headers=csrf)).json()
        listed = (await http.get("/api/workflows")).json()
        broken_id = next(w["id"] for w in listed if w["name"] == "Broken lead flow")
        await http.post("/api/analyze", json={"workflowId": broken_id}, headers=csrf)
        summary = (await http.get("/api/agency/summary")).json()
    assert company.kind == "company"
    assert sorted(x["locationId"] for x in locations) == ["loc_1", "loc_2"]
    assert sorted(w["locationId"] for w in listed) == ["loc_1", "loc_1", "loc_2"]
    by_loc = {s["locationId"]: s for s in summary}
    assert by_loc["loc_1"]["workflows"] == 2 and by_loc["loc_1"]["analysed"] == 1
    assert by_loc["loc_1"]["worstGrade"] in ("Critical", "High Risk", "Needs Attention")
    assert by_loc["loc_2"] == {**by_loc["loc_2"], "workflows": 1, "analysed": 0, "worstGrade": None}


@SQLITE
async def test_a_failing_ghl_opens_the_circuit(ghl_app, ghl):
    """GHL failing again and again: after the breaker opens, requests get 503 CIRCUIT_OPEN without reaching GHL."""
    app = ghl_app()
    async with serve(app) as http:
        await ghl_sign_in(http)
        ghl.behaviour["/workflows/"] = "html500"
        answers = [await http.get("/api/workflows") for _ in range(4)]
        sent = ghl.hits["/workflows/"]
        later = await http.get("/api/workflows")
    assert {a.status_code for a in answers} <= {502, 503}
    assert (later.status_code, later.json()["code"]) == (503, "CIRCUIT_OPEN")
    assert ghl.hits["/workflows/"] == sent  # refused here, not sent


@SQLITE
async def test_ghl_saying_none_left_pauses_calls_for_its_interval(ghl_app, ghl):
    """GHL's X-RateLimit-Remaining: 0 (its limit lower than the documented one): the next call is refused here."""
    ghl.rate_limit, ghl.window = 2, 60.0
    app = ghl_app()
    async with serve(app) as http:
        await ghl_sign_in(http)
        codes = [(await http.get("/api/workflows")).status_code for _ in range(3)]
        last = await http.get("/api/workflows")
    assert codes == [200, 200, 429]
    assert last.json()["code"] == "GHL_RATE_LIMITED" and float(last.headers["retry-after"]) > 50
    assert ghl.hits["/workflows/"] == 2


@SQLITE
async def test_a_long_ghl_429_is_a_429_here(ghl_app, ghl):
    """GHL answering 429 with a Retry-After too long to wait: 429 GHL_RATE_LIMITED with it, not a 502."""
    ghl.rate_limit, ghl.window = 1, 60.0
    app = ghl_app()
    async with serve(app) as http:
        await ghl_sign_in(http)
        ghl.calls["loc_1"] = [time.time()]  # GHL counts a call made elsewhere (another app)
        r = await http.get("/api/workflows")
    assert (r.status_code, r.json()["code"]) == (429, "GHL_RATE_LIMITED")
    assert float(r.headers["retry-after"]) > 2
