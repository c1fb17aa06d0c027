"""HTTP routes of the Spark runtime, exactly as the ``@github/spark`` client calls them.

    GET    /_spark/kv[?collection=c]        JSON array of every key (streamed, in key order)
    GET    /_spark/kv/{key}[?collection=c]  the stored JSON text; 404 when missing
    POST   /_spark/kv/{key}[?collection=c]  store the body (JSON text, sent as text/plain);
                                            ``X-Spark-Initial: true`` stores only if the key is missing
    DELETE /_spark/kv/{key}[?collection=c]  remove (204 whether or not it existed)
    GET    /_spark/db/collections/{name}    [{"key", "value"}] of a collection, value the stored JSON text
                                            (``@github/spark/db``'s ``getAll``; streamed, in key order)
    GET    /_spark/user                     {avatarUrl, email, id, isOwner, login}; ``null`` when signed out
                                            (the client caches the body as the user: ``if (!user)`` works)
    POST   /_spark/loaded                   {url, load_ms} -> 204, recorded as a metric

On a hosted app's host (hosting.py), every call uses that app's namespace; a public app serves anonymous
visitors too. ``POST /_spark/llm`` is the AI module's.

The client sends keys through ``encodeURIComponent``, so a key may hold an encoded ``/``. The server
decodes the path before routing, which would make ``a%2Fb`` and ``a/b`` (and ``a/`` and ``a``) the
same, so the key is taken from the undecoded ``raw_path`` and percent-decoded exactly once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import unquote_to_bytes

import msgspec
from litestar import Response, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery
from litestar.response import Stream

from bastion.core.dependencies import AppRequest
from bastion.core.errors import MalformedBody, ValidationFailed
from bastion.spark.apps import HostedApp
from bastion.spark.errors import InvalidKey
from bastion.spark.hosting import HOSTED_KEY
from bastion.spark.schemas import Loaded, SparkUser
from bastion.spark.service import KvService, Namespace, namespace_of, record_load, user_of

KV_PATH = "/_spark/kv"
DB_PATH = "/_spark/db"
_KV_PREFIX = (KV_PATH + "/").encode()


_encode = msgspec.json.encode


def _space(request: AppRequest, kv: KvService, collection: str | None) -> Namespace:
    # Anonymous callers get 401 (or the refusal their resolver recorded), except on a public hosted app's
    # host or with anonymous use on.
    found = request.scope.get(HOSTED_KEY)
    hosted = found if isinstance(found, HostedApp) else None
    anonymous_ok = kv.settings.allow_anonymous or (hosted is not None and hosted.public)
    principal = request.principal_or_none if anonymous_ok else request.principal
    return namespace_of(principal, kv.settings, collection, hosted=hosted.name if hosted else None)


async def _json_array(pages: AsyncIterator[list[bytes]]) -> AsyncIterator[bytes]:
    """``[a, b, …]`` from pages of encoded items, one chunk per page."""
    yield b"["
    first = True
    async for page in pages:
        if page:
            yield (b"" if first else b",") + b",".join(page)
            first = False
    yield b"]"


async def _encoded_keys(kv: KvService, space: Namespace) -> AsyncIterator[list[bytes]]:
    async for page in kv.keys(space):
        yield [_encode(key) for key in page]


async def _encoded_entries(kv: KvService, space: Namespace) -> AsyncIterator[list[bytes]]:
    # The client parses each value with JSON.parse: the stored JSON text goes out as a JSON string.
    async for page in kv.entries(space):
        yield [b'{"key":' + _encode(key) + b',"value":' + _encode(value) + b"}" for key, value in page]


def _key(request: AppRequest, routed: str) -> str:
    raw = request.scope.get("raw_path")
    if isinstance(raw, bytes) and raw.startswith(_KV_PREFIX):
        try:
            return unquote_to_bytes(raw[len(_KV_PREFIX) :]).decode()
        except UnicodeDecodeError:
            raise InvalidKey("The key is not valid UTF-8 once percent-decoded.") from None
    return routed.removeprefix("/")  # a server that gives no raw_path: the decoded path is all there is


@get(KV_PATH, sync_to_thread=False)
def kv_keys(
    request: AppRequest, spark_kv: NamedDependency[KvService], collection: FromQuery[str | None] = None
) -> Stream:
    space = _space(request, spark_kv, collection)
    return Stream(_json_array(_encoded_keys(spark_kv, space)), media_type="application/json")


@get(DB_PATH + "/collections/{name:str}", sync_to_thread=False)
def db_collection(request: AppRequest, name: FromPath[str], spark_kv: NamedDependency[KvService]) -> Stream:
    space = _space(request, spark_kv, name)
    return Stream(_json_array(_encoded_entries(spark_kv, space)), media_type="application/json")


@get(KV_PATH + "/{key:path}")
async def kv_get(
    request: AppRequest,
    key: FromPath[str],
    spark_kv: NamedDependency[KvService],
    collection: FromQuery[str | None] = None,
) -> Response[bytes]:
    value = await spark_kv.get(_space(request, spark_kv, collection), _key(request, key))
    return Response(value.encode(), media_type="application/json")


@post(KV_PATH + "/{key:path}", status_code=204)
async def kv_set(
    request: AppRequest,
    key: FromPath[str],
    spark_kv: NamedDependency[KvService],
    collection: FromQuery[str | None] = None,
) -> None:
    space = _space(request, spark_kv, collection)
    initial = request.headers.get("x-spark-initial", "").strip().lower() == "true"
    await spark_kv.put(space, _key(request, key), await request.body(), initial=initial)


@delete(KV_PATH + "/{key:path}", status_code=204)
async def kv_delete(
    request: AppRequest,
    key: FromPath[str],
    spark_kv: NamedDependency[KvService],
    collection: FromQuery[str | None] = None,
) -> None:
    await spark_kv.delete(_space(request, spark_kv, collection), _key(request, key))


@get("/_spark/user", sync_to_thread=False)
def spark_user(request: AppRequest) -> SparkUser | None:
    principal = request.principal_or_none
    return None if principal is None else user_of(principal)


@post("/_spark/loaded", status_code=204)
async def spark_loaded(request: AppRequest) -> None:
    try:
        loaded = request.decoder.decode(await request.body() or b"{}", type=Loaded)
    except ValidationFailed:  # Spark's client expects a 400 for any body it did not mean to send
        raise MalformedBody('Send {"url": ..., "load_ms": ...} as JSON.') from None
    record_load(loaded.load_ms)


route_handlers = [kv_keys, db_collection, kv_get, kv_set, kv_delete, spark_user, spark_loaded]
