"""The served OpenAPI document tells the truth: problem+json for every error status, OPTIONS Allow as documented."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable
from typing import Any

from bastion.core.openapi import ANY_OPERATION, WITH_BODY
from tests.conftest import serve

METHODS = ("get", "post", "put", "patch", "delete")


async def test_every_operation_documents_its_errors_as_problem_json(make_app: Callable[..., Any]) -> None:
    """Each operation lists the statuses the edge and the app can answer, all application/problem+json with the
    Problem schema, and none of Litestar's own (never sent) error shape; a 204 documents no body."""
    async with serve(make_app()) as http:
        document = (await http.get("/schema/openapi.json")).json()
    assert document["components"]["schemas"]["Problem"]["required"] == ["type", "title", "status", "detail", "code"]
    operations = [(p, m, op) for p, item in document["paths"].items() for m, op in item.items() if m in METHODS]
    assert len(operations) > 25
    for path, method, operation in operations:
        responses = operation["responses"]
        expected = {*ANY_OPERATION, *(WITH_BODY if method != "get" else ())}
        assert {str(s) for s in expected} | {"default"} <= set(responses), (method, path)
        for status, response in responses.items():
            if status.startswith(("4", "5")) or status == "default":
                assert list(response["content"]) == ["application/problem+json"], (method, path, status)
            if status == "204":
                assert "content" not in response, (method, path)


async def test_options_allow_names_the_documented_methods(make_app: Callable[..., Any]) -> None:
    """OPTIONS on a path answers Allow with exactly the documented methods plus OPTIONS (Litestar kept the first
    handler's methods for a path whose handlers were registered separately, e.g. GET and POST /api/keys)."""
    async with serve(make_app()) as http:
        document = (await http.get("/schema/openapi.json")).json()
        for path, item in document["paths"].items():
            if "{" in path:
                continue
            answer = await http.options(path)
            allowed = {m.strip() for m in answer.headers["allow"].split(",")}
            documented = {m.upper() for m in item if m in METHODS}
            assert allowed - {"OPTIONS", "HEAD"} == documented, (path, allowed, documented)


async def test_the_api_reference_page(make_app: Callable[..., Any]) -> None:
    """/docs is the Scalar page over /schema/openapi.json, with a CSP that lets it load Scalar (and nothing else)."""
    async with serve(make_app()) as http:
        page = await http.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'data-url="/schema/openapi.json"' in page.text, page.text
    csp = page.headers["content-security-policy"]
    assert "script-src https://cdn.jsdelivr.net" in csp and "connect-src 'self'" in csp
    assert "https://cdn.jsdelivr.net/npm/@scalar/api-reference@" in page.text


async def test_the_api_reference_pages_inline_scripts_are_allowed_by_hash(make_app: Callable[..., Any]) -> None:
    """Each inline script of /docs (Scalar's configuration element) is allowed by its SHA-256 in the page's CSP, so
    a browser runs it instead of refusing it with a violation on every load."""
    async with serve(make_app()) as http:
        page = await http.get("/docs")
    inline = re.findall(rb"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", page.content, re.S)
    assert inline
    script_src = next(d for d in page.headers["content-security-policy"].split(";") if "script-src" in d)
    for body in inline:
        digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
        assert f"'sha256-{digest}'" in script_src, (body, script_src)
    assert "'unsafe-inline'" not in script_src


async def test_structs_that_refuse_unknown_fields_say_so(make_app: Callable[..., Any]) -> None:
    """A body schema whose struct forbids unknown fields has additionalProperties: false (msgspec answers 422)."""
    async with serve(make_app()) as http:
        schemas = (await http.get("/schema/openapi.json")).json()["components"]["schemas"]
        refused = await http.post("/auth/login", json={"email": "a@example.com", "password": "x", "extra": 1})
    assert schemas["LoginIn"]["additionalProperties"] is False
    assert schemas["RegisterIn"]["additionalProperties"] is False
    assert refused.status_code == 422
