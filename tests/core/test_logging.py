"""Access log and redaction."""

from __future__ import annotations

from bastion.core.logging import REDACTED, get_logger, redact
from tests.conftest import serve


async def test_one_access_line_per_request_with_every_field(make_app, logs):
    """Each request writes one JSON line with id, method, route template, status, time, client, bytes."""
    async with serve(make_app()) as http:
        response = await http.get("/t/slow", params={"seconds": 0})
    lines = [line for line in logs() if line.get("event") == "request"]
    assert len(lines) == 1
    line = lines[0]
    assert line["request_id"] == response.headers["x-request-id"]
    assert line["method"] == "GET" and line["route"] == "/t/slow" and line["status"] == 200
    assert line["client"] == "198.51.100.7" and line["principal"] is None
    assert line["bytes"] == len(response.content)
    assert line["duration_ms"] >= 0 and line["level"] == "info" and line["timestamp"].endswith("Z")


async def test_access_line_logs_the_route_template_not_the_raw_path(make_app, logs):
    """Ids and tokens in a URL never reach the log: the line carries the route template."""
    async with serve(make_app()) as http:
        await http.get("/problems/secret-token-abc123")
        await http.get("/t/slow", params={"seconds": 0, "token": "s3cr3t-value"})
    text = str(logs())
    assert "secret-token-abc123" not in text and "s3cr3t-value" not in text
    assert "/problems/{slug}" in text


async def test_slow_requests_are_warnings(make_app, logs):
    """A request slower than SLOW_REQUEST_MS is logged as a 'slow request' warning."""
    async with serve(make_app(slow_request_ms=20)) as http:
        await http.get("/t/slow", params={"seconds": 0.05})
    slow = [line for line in logs() if line.get("event") == "slow request"]
    assert len(slow) == 1 and slow[0]["level"] == "warning" and slow[0]["duration_ms"] >= 50


async def test_credentials_in_headers_never_reach_the_log(make_app, logs):
    """An Authorization header or cookie sent with a request appears nowhere in the log."""
    async with serve(make_app()) as http:
        await http.get(
            "/t/slow?seconds=0",
            headers={"Authorization": "Bearer sk-live-abcdef123456", "Cookie": "session=cookie-secret-999"},
        )
    text = str(logs())
    assert "sk-live-abcdef123456" not in text and "cookie-secret-999" not in text


def test_redaction_blanks_credential_keys_at_any_depth():
    """Keys naming credentials are redacted, nested ones too; counts stay readable."""
    event = redact(
        None,
        "info",
        {
            "event": "x",
            "password": "pw",
            "api_key": "k",
            "nested": {"Authorization": "Basic abc", "ok": "fine"},
            "items": [{"refresh_token": "r"}],
            "prompt_tokens": 12,
        },
    )
    assert event["password"] == REDACTED and event["api_key"] == REDACTED
    assert event["nested"] == {"Authorization": REDACTED, "ok": "fine"}
    assert event["items"] == [{"refresh_token": REDACTED}]
    assert event["prompt_tokens"] == 12


def test_redaction_blanks_credential_shaped_values_in_free_text():
    """Bearer tokens, API keys, JWTs, URL passwords and key=value secrets inside text are blanked."""
    samples = {
        "got Bearer abcdefghijklmnop back": "abcdefghijklmnop",
        "key bsk_live_1234567890abcdef used": "bsk_live_1234567890abcdef",
        "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.sig123 seen": "eyJzdWIiOiIxMjM0In0",
        "postgresql://bastion:pa55word@db/x": "pa55word",
        "failed: password=hunter2, retrying": "hunter2",
    }
    for text, secret in samples.items():
        cleaned = redact(None, "info", {"event": "e", "detail": text})["detail"]
        assert secret not in cleaned, text


def test_redaction_blanks_phone_numbers_and_message_texts():
    """Phone numbers inside text (E.164 or a bare wa_id) and the values of message-text and phone keys are blanked;
    versions, dates, hex ids and numbers stay readable."""
    event = {
        "event": "e",
        "detail": "delivery to +33 6 12 34 56 78 (wa_id 33698765432) failed",
        "message": {"to": "+4915112345678", "text": "meet me at 6", "caption": "photo", "kind": "text"},
        "note": "bastion 3.11.4 on 2026-12-03, id 5f2c9a1e0b3d0000000042",
        "count": 33612345678,
    }
    cleaned = str(redact(None, "info", event))
    for secret in ("+33 6 12 34 56 78", "33698765432", "+4915112345678", "meet me at 6", "photo"):
        assert secret not in cleaned, secret
    for kept in ("3.11.4", "2026-12-03", "5f2c9a1e0b3d0000000042", "33612345678", "'kind': 'text'"):
        assert kept in cleaned, kept


def test_module_loggers_are_redacted_too(logs, make_app):
    """A log call anywhere in the code goes through redaction."""
    make_app()  # configures logging
    get_logger("bastion.test").warning("upstream failed", api_key="sk-abc", detail="token=xyz123456")
    line = next(line for line in logs() if line.get("event") == "upstream failed")
    assert line["api_key"] == REDACTED and "xyz123456" not in line["detail"]
