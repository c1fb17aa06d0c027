"""Listing: ``GET /_spark/kv`` gives every key however many (streamed a page at a time), and
``GET /_spark/db/collections/{name}`` gives a collection as ``@github/spark/db`` reads it."""

from __future__ import annotations

import datetime as dt
import json
import tracemalloc

import msgspec
import pytest
from sqlalchemy import insert

from bastion.spark.models import KvEntry
from bastion.spark.router import _encoded_keys, _json_array
from bastion.spark.service import KvService, Namespace
from tests.conftest import serve
from tests.spark.test_kv import TEXT, USER, put


@pytest.mark.parametrize("kv_app", ["sqlite"], indirect=True)
async def test_every_one_of_100000_keys_is_listed(kv_app):
    """100,000 keys: the list has them all, in order, and the service reads them a page (1,000) at a time."""
    app = kv_app()
    count = 100_000
    now = dt.datetime.now(dt.UTC)
    async with serve(app) as http:
        rows = [
            {"app": "default", "collection": "", "key": f"k{i:06d}", "value": "1", "updated_at": now}
            for i in range(count)
        ]
        async with app.platform.db.transaction() as session:
            await session.execute(insert(KvEntry), rows)
        response = await http.get("/_spark/kv", headers={**USER, **TEXT})
        kv: KvService = app.litestar.dependencies["spark_kv"].dependency()
        pages = [len(page) async for page in kv.keys(Namespace("default"))]
        total, peak = await _streamed_size_and_peak(kv, Namespace("default"))
        held = await _held_by_a_list(kv, Namespace("default"))
    keys = response.json()
    assert response.status_code == 200 and response.headers["content-type"].startswith("application/json")
    assert len(keys) == count and keys == sorted(keys) and keys[0] == "k000000" and keys[-1] == "k099999"
    assert len(pages) == 100 and max(pages) == 1000
    # Flat memory: producing the whole 1 MB answer peaks well below the answer itself, and far below holding
    # every key in a list (what the handler did before: several MB at 100,000 keys).
    assert total == len(response.content) and peak < total and peak * 5 < held, (total, peak, held)


async def _held_by_a_list(kv: KvService, space: Namespace) -> int:
    """Memory held by a list of every key and its encoded answer (the non-streamed way)."""
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        keys = [key async for page in kv.keys(space) for key in page]
        body = msgspec.json.encode(keys)
        held = tracemalloc.get_traced_memory()[0] - base
        del keys, body
        return held
    finally:
        tracemalloc.stop()


async def _streamed_size_and_peak(kv: KvService, space: Namespace) -> tuple[int, int]:
    """Bytes of the streamed answer and the peak of memory allocated while producing it (tracemalloc)."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        total = 0
        async for chunk in _json_array(_encoded_keys(kv, space)):
            total += len(chunk)
        return total, tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


async def test_an_empty_app_lists_an_empty_array(kv_app):
    async with serve(kv_app()) as http:
        response = await http.get("/_spark/kv", headers={**USER, **TEXT})
        collection = await http.get("/_spark/db/collections/todos", headers=USER)
    assert response.content == b"[]" and collection.content == b"[]"


async def test_a_collection_lists_as_the_db_client_reads_it(kv_app):
    """Entries inserted into a collection come back as [{"key", "value"}], value the stored JSON text."""
    async with serve(kv_app()) as http:
        await put(http, "01J0000000000000000000000A", '{"title": "milk", "done": false}', collection="todos")
        await put(http, "01J0000000000000000000000B", '{"title": "bread \\u00e9", "n": 2}', collection="todos")
        await put(http, "elsewhere", '{"x": 1}', collection="other")
        await put(http, "plain", '"not in a collection"')
        response = await http.get("/_spark/db/collections/todos", headers=USER)
        bad = await http.get("/_spark/db/collections/" + "x" * 65, headers=USER)
    entries = response.json()
    assert response.status_code == 200
    assert [e["key"] for e in entries] == ["01J0000000000000000000000A", "01J0000000000000000000000B"]
    assert json.loads(entries[0]["value"]) == {"title": "milk", "done": False}
    assert json.loads(entries[1]["value"]) == {"title": "bread é", "n": 2}
    assert bad.status_code == 422 and bad.json()["code"] == "KV_COLLECTION_INVALID"
