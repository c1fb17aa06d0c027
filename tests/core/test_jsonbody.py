"""The JSON decoding policy (core/jsonbody.py): every malformed body is a 400 problem, never a 500."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
import pytest

from bastion.core.errors import MalformedBody, ValidationFailed
from bastion.core.jsonbody import JsonDecoder
from tests.conftest import serve


class Thing(msgspec.Struct):
    name: str
    count: int = 1


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"name": "\xff"}', "UTF-8"),
        (b"[" * 10_000 + b"]" * 10_000, "deep"),
        (b"[" * 65 + b"]" * 65, "64 levels"),
        (b'{"name": "a", "count": 1e400}', "out of range"),
        (b'{"name": "a", "count": 9223372036854775808}', "64-bit"),
        (b'{"name": "a", "count": -99999999999999999999}', "64-bit"),
        (b'{"name": "a\\u0000"}', "NUL"),
        (b'{"name": ', "not valid JSON"),
    ],
)
def test_policy_refuses_with_a_400(body: bytes, reason: str) -> None:
    """Each breach of the policy is a MalformedBody (400) naming the reason, typed or not (a top-level array
    does not reach the depth check when decoded into a struct: it is a 422 there)."""
    for kind in (None,) if body.startswith(b"[") else (None, Thing):
        with pytest.raises(MalformedBody) as caught:
            JsonDecoder().decode(body, type=kind)
        assert reason in caught.value.detail


def test_policy_accepts_what_is_within_bounds() -> None:
    """64 levels, int64 extremes, long digit runs inside strings and escaped newlines are all fine."""
    decoder = JsonDecoder()
    assert decoder.decode(b"[" * 64 + b"]" * 64) is not None
    assert decoder.decode(b"[9223372036854775807, -9223372036854775808, 1.5e300]")[0] == 2**63 - 1
    assert decoder.decode(b'{"name": "12345678901234567890123 [[[[", "count": 2}', type=Thing) == Thing(
        "12345678901234567890123 [[[[", 2
    )
    assert JsonDecoder(max_depth=3).decode(b'["[[[[[["]') == ["[[[[[["]


def test_a_schema_mismatch_is_a_422() -> None:
    with pytest.raises(ValidationFailed):
        JsonDecoder().decode(b'{"count": 2}', type=Thing)


async def test_every_json_route_uses_the_policy(make_app: Callable[..., Any]) -> None:
    """Through the app: invalid UTF-8, deep nesting and big numbers on a ``data:`` route are 400 problem+json,
    and the configured depth applies."""
    app = make_app(json_max_depth=4)
    async with serve(app) as http:
        for body in (b'{"name": "\xff"}', b'{"name": [[[[[1]]]]]}', b'{"name": "a", "count": 1e999}'):
            response = await http.post("/t/echo", content=body, headers={"content-type": "application/json"})
            assert response.status_code == 400, response.text
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["code"] == "MALFORMED_BODY"
        ok = await http.post("/t/echo", json={"name": "a", "count": 3})
        assert ok.json() == {"name": "a", "count": 3}
        nul = await http.get("/t/slow", params={"seconds": "0\x00"})
        assert nul.status_code == 400 and nul.json()["code"] == "BAD_REQUEST"
