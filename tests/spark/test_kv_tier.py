"""The kv tier as useKV uses it: counted per signed-in user (not per address), with a burst a typist never
exhausts, while a script hammering the API is stopped."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import serve
from tests.spark.test_kv import put

ADA = {"Authorization": "Bearer user-ada"}
GRACE = {"Authorization": "Bearer user-grace"}


@pytest.mark.parametrize("kv_app", ["sqlite"], indirect=True)
async def test_a_script_is_stopped_and_other_users_behind_the_same_address_are_not(kv_app):
    """With the default kv tier, 2,000 writes sent 100 at a time get 429s once the burst of 1,200 is spent;
    another user at the same address is untouched (the tier is keyed on the user)."""
    app = kv_app(rate_limits={"general": "100000/minute"})  # the kv tier keeps its default
    statuses: list[int] = []
    async with serve(app) as http:
        for batch in range(20):
            sent = [put(http, f"k{batch}-{i}", f'"{i}"', headers=ADA) for i in range(100)]
            statuses += [r.status_code for r in await asyncio.gather(*sent)]
        other = await put(http, "note", '"grace"', headers=GRACE)
    assert statuses.count(204) >= 1200  # a burst far beyond any typist is served
    assert 429 in statuses and set(statuses) == {204, 429}
    assert other.status_code == 204


@pytest.mark.parametrize("kv_app", ["sqlite"], indirect=True)
async def test_typing_at_ten_characters_a_second_loses_nothing(kv_app):
    """useKV's pattern, timed: a write per keystroke, 10 a second for 15 s (the browser test types for a full
    minute through the real client), with the default kv tier: every write is served, the last one stored."""
    app = kv_app(rate_limits={"general": "100000/minute"})
    text = ""
    statuses = []
    async with serve(app) as http:
        loop = asyncio.get_running_loop()
        start = loop.time()
        for i in range(150):
            text += "abcdefghij"[i % 10]
            statuses.append((await put(http, "note", f'"{text}"', headers=ADA)).status_code)
            await asyncio.sleep(max(0.0, start + (i + 1) * 0.1 - loop.time()))
        stored = await http.get("/_spark/kv/note", headers=ADA)
    assert statuses == [204] * 150
    assert stored.json() == text
