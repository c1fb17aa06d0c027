"""List endpoints page through the core helper (core/pagination.py): bounded limit/offset, never a 500."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bastion.core.pagination import MAX_LIMIT, MAX_OFFSET, Page
from tests.conftest import serve
from tests.identity.conftest import PASSWORD, bearer, register, service_of

BAD = ["offset=-1", "offset=99999999999999999999", "limit=0", "limit=abc", "limit=99999999999999999999999"]


async def test_users_and_keys_page_and_refuse_out_of_bounds(identity_app: Callable[..., Any]) -> None:
    """On SQLite and PostgreSQL: pages do not overlap, and a negative, 20-digit or non-numeric limit/offset
    is a 422 problem before any query runs (it was a 500 from the database driver)."""
    app = identity_app(identity={"registration": "open"})
    async with serve(app) as http:
        for n in range(4):
            await register(http, f"user{n}@example.com")
        await service_of(app).accounts.create_user(email="owner@example.com", password=PASSWORD, role="owner")
        login = await http.post("/auth/login", json={"email": "owner@example.com", "password": PASSWORD})
        auth = bearer(login.json()["access_token"])
        first = (await http.get("/api/users?limit=2&offset=0", headers=auth)).json()
        second = (await http.get("/api/users?limit=2&offset=2", headers=auth)).json()
        everyone = (await http.get("/api/users", headers=auth)).json()
        assert len(first) == len(second) == 2 and len(everyone) == 5
        assert {u["id"] for u in first}.isdisjoint({u["id"] for u in second})
        for query in BAD:
            for path in ("/api/users", "/api/keys"):
                response = await http.get(f"{path}?{query}", headers=auth)
                assert response.status_code == 422, (path, query, response.text)
                assert response.json()["code"] == "VALIDATION_FAILED"


def test_page_bounds() -> None:
    """Page refuses what the query parameters refuse, for callers that are not routes."""
    assert Page(2, 3).slice(list(range(10))) == [3, 4]
    for limit, offset in ((0, 0), (MAX_LIMIT + 1, 0), (1, -1), (1, MAX_OFFSET + 1)):
        with pytest.raises(ValueError, match="out of bounds"):
            Page(limit, offset)
