"""GHL webhooks signed with a test Ed25519 key: valid, missing, bad, stale, duplicated; lifecycle and re-analysis."""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from bastion.workflows.reanalyse import Reanalyser
from tests.conftest import serve
from tests.workflows.conftest import db_of, ghl_sign_in

SQLITE = pytest.mark.parametrize("database", ["sqlite"], indirect=True)
KEY = ed25519.Ed25519PrivateKey.generate()
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(key: Any) -> str:
    public: bytes = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return public.decode()


def event(type_: str = "INSTALL", age_seconds: float = 0, **fields: Any) -> bytes:
    when = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=age_seconds)
    payload = {"type": type_, "webhookId": str(uuid.uuid4()), "timestamp": when.isoformat().replace("+00:00", "Z"),
               "locationId": "loc_1", "companyId": "cmp_1", **fields}  # fmt: skip
    return json.dumps(payload).encode()


def signed(body: bytes, key: ed25519.Ed25519PrivateKey = KEY) -> dict[str, str]:
    return {"x-ghl-signature": base64.b64encode(key.sign(body)).decode(), "content-type": "application/json"}


def rsa_signed(body: bytes) -> dict[str, str]:
    sig = RSA_KEY.sign(body, padding.PKCS1v15(), hashes.SHA256())
    return {"x-wh-signature": base64.b64encode(sig).decode(), "content-type": "application/json"}


async def post(http: httpx.AsyncClient, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return await http.post("/webhooks/ghl", content=body, headers=headers)


@SQLITE
async def test_signed_missing_bad_and_stale(wf_app):
    """Valid: 200. No signature, another key's, a changed body, a stale timestamp: 401 each, nothing recorded."""
    app = wf_app({"ghl_webhook_public_key": pem(KEY)})
    body = event()
    async with serve(app) as http:
        valid = await post(http, body, signed(body))
        missing = await post(http, event(), {"content-type": "application/json"})
        other = event()
        wrong_key = await post(http, other, signed(other, ed25519.Ed25519PrivateKey.generate()))
        tampered = await post(http, event(), signed(body))
        old = event(age_seconds=600)
        stale = await post(http, old, signed(old))
        health = (await http.get("/webhooks/health")).json()
    assert valid.status_code == 200 and valid.json()["status"] == "accepted"
    assert [(r.status_code, r.json()["code"]) for r in (missing, wrong_key, tampered)] == [
        (401, "WEBHOOK_SIGNATURE_INVALID")
    ] * 3
    assert (stale.status_code, stale.json()["code"]) == (401, "WEBHOOK_STALE")
    assert health["signature"] == "ed25519" and health["lastReceivedAt"] is not None


@SQLITE
async def test_a_redelivery_is_acknowledged_and_changes_nothing(wf_app):
    """The same webhookId twice: both 200, the second says duplicate."""
    app = wf_app({"ghl_webhook_public_key": pem(KEY)})
    body = event()
    async with serve(app) as http:
        first = await post(http, body, signed(body))
        again = await post(http, body, signed(body))
    assert first.json()["status"] == "accepted" and again.json()["status"] == "duplicate"


@SQLITE
async def test_no_key_configured_refuses_every_webhook(wf_app):
    """Without GHL's public key nothing is accepted (the SDK's skip-when-unconfigured is the trap)."""
    app = wf_app()
    body = event()
    async with serve(app) as http:
        r = await post(http, body, signed(body))
        health = (await http.get("/webhooks/health")).json()
    assert (r.status_code, r.json()["code"]) == (401, "WEBHOOK_SIGNATURE_INVALID")
    assert health["signature"].startswith("not configured")


@SQLITE
@pytest.mark.parametrize("legacy_on", [False, True])
async def test_legacy_rsa_only_behind_its_setting(wf_app, legacy_on):
    """x-wh-signature (RSA-SHA256) counts only with accept_legacy_signatures; an Ed25519 header never falls back."""
    app = wf_app({"ghl_webhook_public_key": pem(KEY), "ghl_webhook_legacy_rsa_key": pem(RSA_KEY),
                  "accept_legacy_signatures": legacy_on})  # fmt: skip
    body = event()
    async with serve(app) as http:
        legacy = await post(http, body, rsa_signed(body))
        both = event()
        no_fallback = await post(
            http, both, {**rsa_signed(both), "x-ghl-signature": base64.b64encode(b"x" * 64).decode()}
        )
    assert legacy.status_code == (200 if legacy_on else 401)
    assert no_fallback.status_code == 401


@SQLITE
async def test_uninstall_disconnects_the_location(ghl_app, ghl):
    """UNINSTALL: the location's tokens go and its user is asked to reconnect."""
    app = ghl_app({"ghl_webhook_public_key": pem(KEY)})
    async with serve(app) as http:
        await ghl_sign_in(http)
        before = await http.get("/api/workflows")
        body = event("UNINSTALL")
        hook = await post(http, body, signed(body))
        after = await http.get("/api/workflows")
    assert before.status_code == 200 and hook.status_code == 200
    assert (after.status_code, after.json()["code"]) == (403, "GHL_RECONNECT_REQUIRED")


@SQLITE
async def test_a_new_version_queues_one_reanalysis_run_by_the_job(ghl_app, ghl):
    """WorkflowUpdate with a new version: queued (not analysed inline); the same version again: nothing queued.
    The job then analyses the new version and it appears in the history."""
    app = ghl_app({"ghl_webhook_public_key": pem(KEY)})
    async with serve(app) as http:
        await ghl_sign_in(http)
        await http.get("/api/workflows")
        ghl.locations["loc_1"].workflows[1]["version"] = 5
        update = event("WorkflowUpdate", id="wf_broken", name="Broken lead flow", status="published", version=5)
        queued = (await post(http, update, signed(update))).json()
        same = event("WorkflowUpdate", id="wf_broken", name="Broken lead flow", status="published", version=5)
        unchanged = (await post(http, same, signed(same))).json()
        inline = (await http.get("/api/history")).json()["items"]
        parts = app.litestar.dependencies["workflows"].dependency()
        made = await Reanalyser(db_of(app), parts.service).run()
        history = (await http.get("/api/history")).json()["items"]
        health = (await http.get("/webhooks/health")).json()
    assert (queued["queued"], unchanged["queued"]) == (1, 0)
    assert inline == [] and made == 1
    assert [(h["workflowName"], h["workflowVersion"]) for h in history] == [("Broken lead flow", 5)]
    assert health["queuedReanalyses"] == 0


@SQLITE
async def test_bad_json_after_a_good_signature_is_422(wf_app):
    """A signed body that is not a GHL event: 422, not 500."""
    app = wf_app({"ghl_webhook_public_key": pem(KEY)})
    body = b'{"type": "INSTALL"}'
    async with serve(app) as http:
        r = await post(http, body, signed(body))
    assert r.status_code == 422


def test_settings_problems_name_what_to_fix():
    """A client id without its secret, legacy signatures without a key, a key of the wrong kind: errors; GHL on
    without a webhook key: a warning (webhooks would all be refused)."""
    from bastion.workflows.settings import WorkflowsSettings

    assert WorkflowsSettings(ghl_webhook_public_key=pem(KEY)).problems() == []
    wrong = WorkflowsSettings(ghl_webhook_public_key=pem(RSA_KEY)).problems()
    assert [(p.severity, p.setting) for p in wrong] == [("error", "BASTION_WORKFLOWS__GHL_WEBHOOK_PUBLIC_KEY")]
    half = WorkflowsSettings(ghl_client_id="x", accept_legacy_signatures=True).problems()
    assert [(p.severity, p.setting.rsplit("__", 1)[1]) for p in half] == [
        ("error", "GHL_CLIENT_SECRET"),
        ("warning", "GHL_WEBHOOK_PUBLIC_KEY"),
        ("error", "GHL_WEBHOOK_LEGACY_RSA_KEY"),
    ]


@pytest.mark.parametrize("database", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
async def test_concurrent_redeliveries_apply_once(wf_app):
    """The same delivery five times at once: every answer 200, one accepted, the rest duplicates."""
    import asyncio

    app = wf_app({"ghl_webhook_public_key": pem(KEY)})
    body = event()
    async with serve(app) as http:
        answers = await asyncio.gather(*(post(http, body, signed(body)) for _ in range(5)))
    assert [a.status_code for a in answers] == [200] * 5
    assert sorted(a.json()["status"] for a in answers) == ["accepted"] + ["duplicate"] * 4
