"""Edge stage 4: method, URL, header and body guards, answered as problem+json."""

from __future__ import annotations

import json
from typing import Any

from bastion.core.text import clean_text, has_control_chars
from tests.conftest import serve


def _problem(response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert set(body) >= {"type", "title", "status", "detail", "code", "request_id"}
    assert body["request_id"] == response.headers["x-request-id"]
    problem: dict[str, Any] = body
    return problem


async def test_method_outside_the_allow_list_is_405(make_app):
    """TRACE (not on the allow-list) gets 405 with an Allow header."""
    async with serve(make_app()) as http:
        response = await http.request("TRACE", "/health")
    _problem(response, 405, "METHOD_NOT_ALLOWED")
    assert "GET" in response.headers["allow"]


async def test_wrong_method_on_a_route_is_405(make_app):
    """DELETE on a GET-only route gets 405 naming the methods it takes."""
    async with serve(make_app()) as http:
        response = await http.delete("/t/slow")
    _problem(response, 405, "METHOD_NOT_ALLOWED")
    assert "GET" in response.headers["allow"]


async def test_url_over_2048_bytes_is_414(make_app):
    """A URL longer than MAX_URL_LENGTH gets 414."""
    async with serve(make_app()) as http:
        response = await http.get("/t/slow", params={"q": "x" * 2100})
    _problem(response, 414, "URI_TOO_LONG")


async def test_headers_over_8_kib_are_431(make_app):
    """Request headers totalling more than 8 KiB get 431."""
    async with serve(make_app()) as http:
        response = await http.get("/health", headers={f"x-filler-{i}": "y" * 500 for i in range(20)})
    _problem(response, 431, "HEADERS_TOO_LARGE")


async def test_declared_body_over_the_limit_is_413_without_reading_it(make_app):
    """A Content-Length over the route's limit is refused before one body byte is read."""
    app = make_app(max_body_bytes=1000)
    reads = 0
    sent: list[dict] = []

    async def receive():
        nonlocal reads
        reads += 1
        return {"type": "http.request", "body": b"x" * 2000, "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/t/echo",
        "raw_path": b"/t/echo",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"localhost"), (b"content-type", b"application/json"), (b"content-length", b"2000")],
        "client": ("198.51.100.7", 1),
        "server": ("127.0.0.1", 80),
        "state": {},
    }
    async with serve(app):
        await app(scope, receive, send)
    assert sent[0]["status"] == 413
    assert reads == 0
    assert json.loads(sent[1]["body"])["code"] == "PAYLOAD_TOO_LARGE"


async def test_streamed_body_over_the_limit_is_413(make_app):
    """A chunked body is cut off with 413 as soon as it passes the limit."""
    app = make_app(max_body_bytes=1000)

    async def chunks():
        for _ in range(10):
            yield b"x" * 500

    async with serve(app) as http:
        response = await http.post("/t/echo", content=chunks(), headers={"content-type": "application/json"})
    _problem(response, 413, "PAYLOAD_TOO_LARGE")


async def test_a_route_group_may_raise_its_body_limit(make_app):
    """A route group with a larger limit accepts a body the global limit would refuse."""
    async with serve(make_app(max_body_bytes=1000)) as http:
        response = await http.post("/t/big", content=b"x" * 3_000_000)
    assert response.status_code == 200
    assert response.json() == {"bytes": 3_000_000}


async def test_body_that_is_not_json_is_415(make_app):
    """A JSON route given a form body gets 415 naming what it accepts."""
    async with serve(make_app()) as http:
        response = await http.post(
            "/t/echo", content=b"name=x", headers={"content-type": "application/x-www-form-urlencoded"}
        )
    body = _problem(response, 415, "UNSUPPORTED_MEDIA_TYPE")
    assert body["accepted"] == ["application/json"]


async def test_body_without_content_type_is_415(make_app):
    """A body sent with no Content-Type at all is not guessed at."""
    async with serve(make_app()) as http:
        response = await http.post("/t/echo", content=b'{"name": "x"}')
    _problem(response, 415, "UNSUPPORTED_MEDIA_TYPE")


async def test_json_suffix_media_types_are_json(make_app):
    """``application/merge-patch+json`` and a charset parameter are accepted as JSON."""
    async with serve(make_app()) as http:
        for media in ["application/json; charset=utf-8", "application/merge-patch+json"]:
            response = await http.post("/t/echo", content=b'{"name": "x"}', headers={"content-type": media})
            assert response.status_code == 200, media


async def test_malformed_json_is_400(make_app):
    """A body that is not valid JSON gets 400 MALFORMED_BODY."""
    async with serve(make_app()) as http:
        response = await http.post("/t/echo", content=b"{bad", headers={"content-type": "application/json"})
    _problem(response, 400, "MALFORMED_BODY")


async def test_json_that_breaks_the_schema_is_422_with_field_errors(make_app):
    """Valid JSON that fails the route's schema gets 422 with one entry per field."""
    async with serve(make_app()) as http:
        response = await http.post("/t/echo", json={"name": "x" * 50})
    body = _problem(response, 422, "VALIDATION_FAILED")
    assert body["errors"] == [{"field": "name", "message": "Expected `str` of length <= 20"}]


async def test_text_route_takes_text(make_app):
    """A route group declared for text/plain accepts it and refuses JSON."""
    async with serve(make_app()) as http:
        ok = await http.post("/t/text", content=b'"hello"', headers={"content-type": "text/plain;charset=UTF-8"})
        refused = await http.post("/t/text", json={"a": 1})
    assert ok.status_code == 200
    _problem(refused, 415, "UNSUPPORTED_MEDIA_TYPE")


async def test_invalid_content_length_is_400(make_app):
    """A Content-Length that is not a number is a 400."""
    app = make_app()
    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/t/echo",
        "raw_path": b"/t/echo",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"localhost"), (b"content-length", b"12abc")],
        "client": ("198.51.100.7", 1),
        "server": ("127.0.0.1", 80),
        "state": {},
    }
    async with serve(app):
        await app(scope, receive, send)
    assert sent[0]["status"] == 400


def test_control_characters_are_stripped_from_stored_text():
    """clean_text removes C0/C1 controls and bidi overrides, keeping tabs and newlines."""
    dirty = "a\x00b\x07c\td\ne\u202ef\x85g\r\n"
    assert clean_text(dirty) == "abc\td\nefg\r\n"
    assert clean_text(dirty, multiline=False) == "abcdefg"
    assert has_control_chars("key\x01") and not has_control_chars("plain key")


def test_clean_text_normalises_unicode():
    """Text is NFC-normalised so look-alike compositions compare equal."""
    assert clean_text("e\u0301") == "\u00e9"
