"""The debugger's API end to end: import, list, structure, analyse, history, diff, export, plans, overrides."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import eventually
from tests.identity.conftest import identity_of
from tests.workflows.builders import broken, chain, corpus, edit, sms
from tests.workflows.conftest import User, running, sign_up


async def _import(http: httpx.AsyncClient, user: User, definition: dict[str, Any]) -> dict[str, Any]:
    r = await http.post("/api/workflows/import", json=definition, headers=user.headers)
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


async def _analyze(http: httpx.AsyncClient, user: User, workflow_id: str) -> dict[str, Any]:
    r = await http.post("/api/analyze", json={"workflowId": workflow_id}, headers=user.headers)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_import_list_structure_analyse_history(wf_app):
    """An imported workflow is listed, its structure read back, analysed, and the analysis is in the history."""
    app = wf_app()
    async with running(app) as http:
        ada = await sign_up(http, app, "ada@example.com", plan="pro")
        imported = await _import(http, ada, corpus()["lead_nurture"])
        wid = imported["workflow"]["id"]
        listed = (await http.get("/api/workflows", headers=ada.headers)).json()
        structure = (await http.get(f"/api/workflows/{wid}/structure", headers=ada.headers)).json()
        analysis = await _analyze(http, ada, wid)
        page = (await http.get("/api/history", headers=ada.headers)).json()
        again = (await http.get(f"/api/analysis/{analysis['id']}", headers=ada.headers)).json()
    assert imported["created"] is True
    assert [w["id"] for w in listed] == [wid]
    assert [s["id"] for s in structure["steps"]][:2] == ["a_tag", "a_sms1"]
    assert structure["triggers"][0]["next"] == [{"to": "a_tag", "branch": None, "goto": False}]
    assert (analysis["score"], analysis["grade"], analysis["issues"]) == (100, "Excellent", [])
    assert [i["id"] for i in page["items"]] == [analysis["id"]]
    assert again == analysis


async def test_free_sees_three_most_severe_and_pro_sees_all(wf_app):
    """The same broken workflow: free gets the 3 first issues (severity, rule, node) and a count of the rest."""
    app = wf_app()
    async with running(app) as http:
        free = await sign_up(http, app, "free@example.com")
        pro = await sign_up(http, app, "pro@example.com", plan="pro")
        seen = {}
        for user in (free, pro):
            r = await http.post("/api/analyze", json={"definition": broken()}, headers=user.headers)
            assert r.status_code == 200, r.text
            seen[user.id] = r.json()
    everything, limited = seen[pro.id], seen[free.id]
    assert everything["hiddenIssues"] == 0 and len(everything["issues"]) == everything["totalIssues"] >= 5
    assert limited["issues"] == everything["issues"][:3]
    assert limited["hiddenIssues"] == everything["totalIssues"] - 3
    assert limited["score"] == everything["score"]  # the score counts every issue, shown or not
    severities = [i["severity"] for i in everything["issues"]]
    assert severities[0] == "critical" and severities == sorted(
        severities, key=["critical", "high", "medium", "low"].index
    )


async def test_a_plan_change_shows_everything_at_once(wf_app):
    """Upgrading a user shows them all the issues of an analysis they already had, on the next request."""
    app = wf_app()
    async with running(app) as http:
        user = await sign_up(http, app, "grace@example.com")
        first = (await http.post("/api/analyze", json={"definition": broken()}, headers=user.headers)).json()
        await identity_of(app).set_plan(user.id, "pro")
        after = (await http.get(f"/api/analysis/{first['id']}", headers=user.headers)).json()
    assert first["hiddenIssues"] > 0
    assert after["hiddenIssues"] == 0 and len(after["issues"]) == after["totalIssues"]


async def test_history_pages_with_a_cursor(wf_app):
    """Five analyses read two at a time: newest first, no repeats, no gaps, and the last page ends it."""
    app = wf_app()
    async with running(app) as http:
        user = await sign_up(http, app, "pages@example.com", plan="pro")
        wid = (await _import(http, user, broken()))["workflow"]["id"]
        made = [(await _analyze(http, user, wid))["id"] for _ in range(5)]
        seen: list[str] = []
        cursor = None
        for _ in range(4):
            params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
            page = (await http.get("/api/history", params=params, headers=user.headers)).json()
            seen += [i["id"] for i in page["items"]]
            cursor = page["nextCursor"]
            if cursor is None:
                break
        bad = await http.get("/api/history", params={"cursor": "not-a-cursor"}, headers=user.headers)
    assert sorted(seen) == sorted(made) and len(seen) == 5
    assert cursor is None
    assert bad.status_code == 422 and bad.headers["content-type"].startswith("application/problem+json")


async def test_diff_new_fixed_unchanged(wf_app):
    """Fixing the secret and adding an unnamed step: the diff says what was fixed, what is new, what stayed."""
    app = wf_app()
    async with running(app) as http:
        user = await sign_up(http, app, "diff@example.com", plan="pro")
        wid = (await _import(http, user, broken()))["workflow"]["id"]
        before = await _analyze(http, user, wid)
        fixed = broken()
        fixed["actions"][2]["config"]["headers"] = {"Authorization": "Bearer {{custom_values.key}}"}
        fixed["actions"].append({"id": "n1", "type": "add_note", "name": "", "config": {}})
        fixed["connections"].append({"from": "x1", "to": "n1"})
        fixed["version"] = 2
        await _import(http, user, fixed)
        after = await _analyze(http, user, wid)
        diff = (
            await http.get(f"/api/analysis/{after['id']}/diff", params={"base": before["id"]}, headers=user.headers)
        ).json()
    assert [i["ruleId"] for i in diff["fixed"]["issues"]] == ["hardcoded-secret"]
    assert [i["ruleId"] for i in diff["new"]["issues"]] == ["unnamed-step"]
    assert len(diff["unchanged"]["issues"]) == before["totalIssues"] - 1
    assert diff["scoreChange"] == after["score"] - before["score"] == 25 - 2


async def test_export_markdown_and_sarif(wf_app):
    """An analysis exports as a Markdown table and as SARIF 2.1.0 whose results are the shown issues."""
    app = wf_app()
    async with running(app) as http:
        user = await sign_up(http, app, "export@example.com", plan="pro")
        analysis = (await http.post("/api/analyze", json={"definition": broken()}, headers=user.headers)).json()
        md = await http.get(
            f"/api/analysis/{analysis['id']}/export", params={"format": "markdown"}, headers=user.headers
        )
        sarif = await http.get(
            f"/api/analysis/{analysis['id']}/export", params={"format": "sarif"}, headers=user.headers
        )
    assert md.headers["content-type"].startswith("text/markdown")
    assert f"# Broken lead flow: {analysis['score']}/100 ({analysis['grade']})" in md.text
    assert md.text.count("\n| ") == analysis["totalIssues"] + 1  # the header row and one row per issue
    doc = sarif.json()
    assert doc["version"] == "2.1.0"
    results = doc["runs"][0]["results"]
    assert [r["ruleId"] for r in results] == [i["ruleId"] for i in analysis["issues"]]
    assert results[0]["level"] == "error"


async def test_delete_and_other_users_cannot_see(wf_app):
    """Another user gets 404 for an analysis and a workflow not theirs; the owner deletes it once."""
    app = wf_app()
    async with running(app) as http:
        owner = await sign_up(http, app, "owner@example.com")
        other = await sign_up(http, app, "other@example.com")
        analysis = (await http.post("/api/analyze", json={"definition": broken()}, headers=owner.headers)).json()
        peek = await http.get(f"/api/analysis/{analysis['id']}", headers=other.headers)
        peek_wf = await http.get(f"/api/workflows/{analysis['workflowId']}/structure", headers=other.headers)
        steal = await http.delete(f"/api/analysis/{analysis['id']}", headers=other.headers)
        gone = await http.delete(f"/api/analysis/{analysis['id']}", headers=owner.headers)
        again = await http.delete(f"/api/analysis/{analysis['id']}", headers=owner.headers)
        anonymous = await http.get("/api/history")
    assert (peek.status_code, peek.json()["code"]) == (404, "ANALYSIS_NOT_FOUND")
    assert (peek_wf.status_code, peek_wf.json()["code"]) == (404, "WORKFLOW_NOT_FOUND")
    assert steal.status_code == 404
    assert gone.status_code == 204 and again.status_code == 404
    assert anonymous.status_code == 401


async def test_bad_definitions_are_422_and_change_nothing(wf_app):
    """Not JSON, a wrong shape, too many steps: a problem+json 422 naming the issue, and nothing stored."""
    app = wf_app(workflows={"max_steps": 10})
    async with running(app) as http:
        user = await sign_up(http, app, "bad@example.com")
        shapes = [
            {"name": "no id"},
            {"id": "w", "actions": [{"id": "a"}]},
            {"id": "w", "actions": "nope"},
            chain(*[sms(f"a{i}") for i in range(12)]),
        ]
        answers = [await http.post("/api/workflows/import", json=s, headers=user.headers) for s in shapes]
        both = await http.post(
            "/api/analyze", json={"workflowId": "x", "definition": {"id": "w"}}, headers=user.headers
        )
        neither = await http.post("/api/analyze", json={}, headers=user.headers)
        listed = (await http.get("/api/workflows", headers=user.headers)).json()
    assert [a.status_code for a in answers] == [422, 422, 422, 422]
    assert {a.json()["code"] for a in answers} == {"INVALID_WORKFLOW_DEFINITION"}
    assert "$.actions[0]" in answers[1].json()["detail"]
    assert both.status_code == neither.status_code == 422
    assert listed == []


async def test_overrides_and_ignores_apply_to_the_next_analysis(wf_app):
    """An account lowers one rule, ignores another and one rule on one node: the next analysis follows."""
    app = wf_app()
    async with running(app) as http:
        user = await sign_up(http, app, "tuned@example.com", plan="pro")
        body = {
            "severity": {"webhook-insecure-url": "low"},
            "ignore": [{"ruleId": "unknown-action-type"}, {"ruleId": "back-to-back-messages", "nodeId": "a2"}],
        }
        put = await http.put("/api/overrides", json=body, headers=user.headers)
        got = (await http.get("/api/overrides", headers=user.headers)).json()
        analysis = (await http.post("/api/analyze", json={"definition": broken()}, headers=user.headers)).json()
        unknown = await http.put("/api/overrides", json={"ignore": [{"ruleId": "no-such-rule"}]}, headers=user.headers)
    assert put.status_code == 200 and got == put.json()
    rules = {i["ruleId"]: i["severity"] for i in analysis["issues"]}
    assert rules["webhook-insecure-url"] == "low"
    assert "unknown-action-type" not in rules and "back-to-back-messages" not in rules
    assert unknown.status_code == 422


async def test_daily_analyses_cap_of_the_free_plan(wf_app):
    """The free plan's analyses_per_day is enforced: the next one is a 429 with Retry-After."""
    app = wf_app(identity={"plans": {"free": {"analyses_per_day": 2}}})
    async with running(app) as http:
        user = await sign_up(http, app, "capped@example.com")
        codes = [
            (await http.post("/api/analyze", json={"definition": broken()}, headers=user.headers)).status_code
            for _ in range(3)
        ]
        last = await http.post("/api/analyze", json={"definition": broken()}, headers=user.headers)
    assert codes == [200, 200, 429]
    assert last.json()["code"] == "ANALYSES_LIMIT_REACHED" and int(last.headers["retry-after"]) > 0


@pytest.mark.parametrize("database", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
async def test_a_plan_change_reaches_another_instance(wf_app):
    """Two instances on one database: instance B has the free user's principal cached; an upgrade made through
    instance A shows everything on B without waiting for its cache to expire."""
    first, second = wf_app(), wf_app(identity={"cache_ttl_seconds": 300})
    async with running(first) as a, running(second) as b:
        user = await sign_up(a, first, "bus@example.com")
        made = (await b.post("/api/analyze", json={"definition": broken()}, headers=user.headers)).json()
        assert made["hiddenIssues"] > 0
        await identity_of(first).set_plan(user.id, "pro")

        async def shown_on_b() -> bool:
            seen = (await b.get(f"/api/analysis/{made['id']}", headers=user.headers)).json()
            return bool(seen["hiddenIssues"] == 0)

        assert await eventually(shown_on_b, timeout=5.0)


async def test_trigger_race_with_the_accounts_other_published_workflow(wf_app):
    """Two imported workflows texting on one trigger: the analysis names the other; a draft twin does not race."""
    app = wf_app()
    async with running(app) as http:
        user = await sign_up(http, app, "race@example.com", plan="pro")
        twin = edit(chain(sms("b1", "Welcome!")), id="wf_twin", name="Webinar welcome (old)")
        await _import(http, user, twin)
        mine = (await http.post("/api/analyze", json={"definition": chain(sms("a1"))}, headers=user.headers)).json()
        await _import(http, user, {**twin, "status": "draft"})
        again = (await http.post("/api/analyze", json={"definition": chain(sms("a1"))}, headers=user.headers)).json()
    races = [i for i in mine["issues"] if i["ruleId"] == "trigger-race"]
    assert len(races) == 1 and "Webinar welcome (old)" in races[0]["message"]
    assert [i for i in again["issues"] if i["ruleId"] == "trigger-race"] == []
