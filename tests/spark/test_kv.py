"""The Spark KV contract, call by call as the ``@github/spark`` client makes them, on SQLite and PostgreSQL.

The client sends keys through ``encodeURIComponent``, every request with ``Content-Type: text/plain``
(GETs too, without a body), values as ``JSON.stringify(value)`` and ``X-Spark-Initial: true|false`` on writes.
"""

from __future__ import annotations

import asyncio
import json
from urllib.parse import quote

from tests.conftest import serve

USER = {"Authorization": "Bearer user-ada"}
TEXT = {"Content-Type": "text/plain"}


def enc(key: str) -> str:
    """JavaScript's encodeURIComponent."""
    return quote(key, safe="!~*'()")


def url(key: str, collection: str | None = None) -> str:
    return f"/_spark/kv/{enc(key)}" + (f"?collection={enc(collection)}" if collection is not None else "")


async def put(http, key: str, value: str, *, initial: bool = False, headers=USER, collection=None):
    return await http.post(
        url(key, collection),
        content=value.encode(),
        headers={**headers, **TEXT, "X-Spark-Initial": "true" if initial else "false"},
    )


async def get(http, key: str, headers=USER, collection=None):
    return await http.get(url(key, collection), headers={**headers, **TEXT})


async def test_keys_start_as_an_empty_json_array(kv_app):
    """GET /_spark/kv is a JSON array, empty at first."""
    async with serve(kv_app()) as http:
        response = await http.get("/_spark/kv", headers={**USER, **TEXT})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == []


async def test_missing_key_is_404(kv_app):
    """GET of a key never set is 404 (the client reads it as undefined)."""
    async with serve(kv_app()) as http:
        response = await get(http, "nothing")
    assert response.status_code == 404
    assert response.json()["code"] == "KV_KEY_NOT_FOUND"


async def test_set_then_get_returns_the_exact_json_text(kv_app):
    """A value comes back byte for byte as sent (whitespace and number spelling included)."""
    text = '{"todos": [ {"title": "milk", "done": false} ], "price": 2.50}'
    async with serve(kv_app()) as http:
        stored = await put(http, "state", text)
        response = await get(http, "state")
    assert stored.status_code == 204
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.text == text


async def test_bodiless_get_with_a_text_plain_content_type_is_served(kv_app):
    """The client's GETs carry Content-Type: text/plain and no body; that is never refused."""
    async with serve(kv_app()) as http:
        await put(http, "k", "1")
        response = await http.get(url("k"), headers={**USER, "Content-Type": "text/plain;charset=UTF-8"})
    assert response.status_code == 200


async def test_written_keys_are_listed(kv_app):
    """Every key written is in GET /_spark/kv, in key order."""
    async with serve(kv_app()) as http:
        for key in ("b", "a", "c"):
            await put(http, key, "true")
        response = await http.get("/_spark/kv", headers=USER)
    assert response.json() == ["a", "b", "c"]


async def test_set_overwrites(kv_app):
    """A second set (X-Spark-Initial: false) replaces the value."""
    async with serve(kv_app()) as http:
        await put(http, "counter", "1")
        await put(http, "counter", "2")
        response = await get(http, "counter")
    assert response.text == "2"


async def test_initial_value_never_overwrites(kv_app):
    """X-Spark-Initial: true on an existing key leaves the stored value alone (and still succeeds)."""
    async with serve(kv_app()) as http:
        await put(http, "theme", '"dark"')
        again = await put(http, "theme", '"light"', initial=True)
        response = await get(http, "theme")
    assert again.status_code == 204
    assert response.text == '"dark"'


async def test_initial_value_sets_a_missing_key(kv_app):
    """X-Spark-Initial: true on a missing key stores the value (useKV's getOrSetKey)."""
    async with serve(kv_app()) as http:
        await put(http, "theme", '"light"', initial=True)
        response = await get(http, "theme")
    assert response.text == '"light"'


async def test_concurrent_initial_writes_never_overwrite(kv_app):
    """Many tabs setting an initial value at once: exactly one value wins and a set value is never replaced."""
    async with serve(kv_app()) as http:
        first = await asyncio.gather(*[put(http, "fresh", str(i), initial=True) for i in range(20)])
        winner = (await get(http, "fresh")).text
        await put(http, "owned", '"mine"')
        second = await asyncio.gather(*[put(http, "owned", f'"tab {i}"', initial=True) for i in range(20)])
        kept = (await get(http, "owned")).text
        again = (await get(http, "fresh")).text
    assert {r.status_code for r in first + second} == {204}
    assert winner in {str(i) for i in range(20)} and again == winner
    assert kept == '"mine"'


async def test_delete_removes_and_is_idempotent(kv_app):
    """DELETE removes the key (204), and deleting a missing key is 204 too."""
    async with serve(kv_app()) as http:
        await put(http, "gone", "[]")
        first = await http.delete(url("gone"), headers={**USER, **TEXT})
        missing = await get(http, "gone")
        second = await http.delete(url("gone"), headers=USER)
        keys = (await http.get("/_spark/kv", headers=USER)).json()
    assert (first.status_code, missing.status_code, second.status_code) == (204, 404, 204)
    assert keys == []


async def test_json_scalars_roundtrip(kv_app):
    """null, false, 0, strings and nested values round-trip (JSON.parse reads them back)."""
    values = ["null", "false", "0", '"a string"', '""', "[]", '{"a":{"b":[1,null]}}', "-1.5e3"]
    async with serve(kv_app()) as http:
        for i, value in enumerate(values):
            await put(http, f"v{i}", value)
        read = [(await get(http, f"v{i}")).text for i in range(len(values))]
    assert read == values
    assert [json.loads(v) for v in read] == [json.loads(v) for v in values]


async def test_a_value_that_is_not_json_is_422(kv_app):
    """A body that is not JSON text is 422 KV_VALUE_INVALID and nothing is stored."""
    async with serve(kv_app()) as http:
        bad = await put(http, "k", "{not json")
        undefined = await put(http, "k", "undefined")
        missing = await get(http, "k")
    assert bad.status_code == 422 and bad.json()["code"] == "KV_VALUE_INVALID"
    assert undefined.status_code == 422
    assert missing.status_code == 404


async def test_values_up_to_1_mib_are_kept_larger_ones_413(kv_app):
    """A value of exactly 1 MiB is stored; one byte more is 413 KV_VALUE_TOO_LARGE."""
    fits = '"' + "x" * (1_048_576 - 2) + '"'
    too_big = '"' + "x" * (1_048_576 - 1) + '"'
    async with serve(kv_app()) as http:
        stored = await put(http, "big", fits)
        refused = await put(http, "bigger", too_big)
        read = await get(http, "big")
    assert stored.status_code == 204
    assert refused.status_code == 413 and refused.json()["code"] == "KV_VALUE_TOO_LARGE"
    assert len(read.content) == 1_048_576


async def test_keys_are_data_not_paths(kv_app):
    """Keys with slashes (encoded or not), percent signs, spaces, dots and Unicode are distinct keys."""
    keys = ["a/b", "a%2Fb", "a/", "a", "/lead", "a//b", "100%", "with space", "ключ/🔑", "?q=1#f", "x.y", "a+b"]
    async with serve(kv_app()) as http:
        for i, key in enumerate(keys):
            assert (await put(http, key, str(i))).status_code == 204, key
        read = {key: (await get(http, key)).text for key in keys}
        listed = (await http.get("/_spark/kv", headers=USER)).json()
    assert read == {key: str(i) for i, key in enumerate(keys)}
    assert sorted(listed) == sorted(keys)


async def test_keys_up_to_512_characters(kv_app):
    """A 512-character key (four-byte characters, 6 KiB encoded) works; 513 characters is 422."""
    longest, too_long = "🔑" * 512, "k" * 513
    async with serve(kv_app()) as http:
        stored = await put(http, longest, "1")
        read = await get(http, longest)
        refused = await put(http, too_long, "1")
    assert stored.status_code == 204 and read.text == "1"
    assert refused.status_code == 422 and refused.json()["code"] == "KV_KEY_INVALID"


async def test_keys_with_control_characters_are_refused(kv_app):
    """A key with a control character (newline) is 422 KV_KEY_INVALID; a NUL (%00) is refused at the edge, as in
    every URL, with 400 BAD_REQUEST."""
    async with serve(kv_app()) as http:
        newline = await put(http, "a\nb", "1")
        nul = await get(http, "a\x00b")
    assert newline.status_code == 422 and newline.json()["code"] == "KV_KEY_INVALID"
    assert nul.status_code == 400 and nul.json()["code"] == "BAD_REQUEST"


async def test_collections_are_separate_namespaces(kv_app):
    """?collection= keeps its own keys apart from the default collection and from other collections."""
    async with serve(kv_app()) as http:
        await put(http, "k", '"default"')
        await put(http, "k", '"notes"', collection="notes")
        default = (await get(http, "k")).text
        notes = (await get(http, "k", collection="notes")).text
        other = await get(http, "k", collection="other")
        listed = (await http.get("/_spark/kv?collection=notes", headers=USER)).json()
    assert (default, notes, other.status_code) == ('"default"', '"notes"', 404)
    assert listed == ["k"]


async def test_two_apps_never_see_each_others_keys(kv_app):
    """API keys of different apps have separate stores; users share the configured app's store."""
    app_a, app_b = {"Authorization": "Bearer key-alpha-1"}, {"Authorization": "Bearer key-beta-1"}
    async with serve(kv_app(spark={"app_name": "main"})) as http:
        await put(http, "secret", '"alpha"', headers=app_a)
        await put(http, "secret", '"beta"', headers=app_b)
        await put(http, "secret", '"main"')
        seen = [(await get(http, "secret", headers=h)).text for h in (app_a, app_b, USER)]
        listed_b = (await http.get("/_spark/kv", headers=app_b)).json()
        await http.delete(url("secret"), headers=app_a)
        still_b = (await get(http, "secret", headers=app_b)).text
    assert seen == ['"alpha"', '"beta"', '"main"']
    assert listed_b == ["secret"]
    assert still_b == '"beta"'


async def test_users_of_one_app_share_its_store(kv_app):
    """The KV is the app's, not the user's: what one user stores, another reads (as on Spark)."""
    async with serve(kv_app()) as http:
        await put(http, "board", '["x"]')
        response = await get(http, "board", headers={"Authorization": "Bearer user-grace"})
    assert response.text == '["x"]'


async def test_anonymous_callers_get_401_unless_allowed(kv_app):
    """Without a principal the KV answers 401, unless BASTION_SPARK__ALLOW_ANONYMOUS is on."""
    async with serve(kv_app()) as http:
        refused = await http.get("/_spark/kv", headers=TEXT)
    async with serve(kv_app(spark={"allow_anonymous": True})) as http:
        stored = await put(http, "k", "1", headers={})
        read = await get(http, "k", headers={})
    assert refused.status_code == 401
    assert stored.status_code == 204 and read.text == "1"


async def test_kv_is_rate_limited_by_its_tier(kv_app):
    """The kv tier limits KV calls (here 3 a minute) and says so in the headers."""
    async with serve(kv_app(rate_limits={"kv": "3/minute"})) as http:
        statuses = [(await get(http, "k")).status_code for _ in range(4)]
        last = await get(http, "k")
    assert statuses == [404, 404, 404, 429]
    assert last.headers["ratelimit-policy"] == '"kv";q=3;w=60'


async def test_values_are_durable_across_restarts(kv_app):
    """A value written before a restart is read after it (it lives in the SQL database)."""
    async with serve(kv_app()) as http:
        await put(http, "kept", '{"n": 1}')
    async with serve(kv_app()) as http:
        response = await get(http, "kept")
    assert response.text == '{"n": 1}'
