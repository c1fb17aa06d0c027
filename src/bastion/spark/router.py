"""HTTP routes of the Spark runtime, exactly as the ``@github/spark`` client calls them.

    GET    /_spark/kv[?collection=c]        JSON array of keys
    GET    /_spark/kv/{key}[?collection=c]  the stored JSON text; 404 when missing
    POST   /_spark/kv/{key}[?collection=c]  store the body (JSON text, sent as text/plain);
                                            ``X-Spark-Initial: true`` stores only if the key is missing
    DELETE /_spark/kv/{key}[?collection=c]  remove (204 whether or not it existed)
    GET    /_spark/user                     {avatarUrl, email, id, isOwner, login}; 401 when signed out
    POST   /_spark/loaded                   {url, load_ms} -> 204, recorded as a metric

The client sends keys through ``encodeURIComponent``, so a key may hold an encoded ``/``. The server
decodes the path before routing, which would make ``a%2Fb`` and ``a/b`` (and ``a/`` and ``a``) the
same, so the key is taken from the undecoded ``raw_path`` and percent-decoded exactly once.
"""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

from litestar import Response, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery

from bastion.core.dependencies import AppRequest
from bastion.core.errors import MalformedBody, ValidationFailed
from bastion.spark.errors import InvalidKey
from bastion.spark.schemas import Loaded, SparkUser
from bastion.spark.service import KvService, Namespace, namespace_of, record_load, user_of

KV_PATH = "/_spark/kv"
_KV_PREFIX = (KV_PATH + "/").encode()


def _space(request: AppRequest, kv: KvService, collection: str | None) -> Namespace:
    # With anonymous use off, an anonymous caller gets 401 (or the refusal its resolver recorded).
    principal = request.principal_or_none if kv.settings.allow_anonymous else request.principal
    return namespace_of(principal, kv.settings, collection)


def _key(request: AppRequest, routed: str) -> str:
    raw = request.scope.get("raw_path")
    if isinstance(raw, bytes) and raw.startswith(_KV_PREFIX):
        try:
            return unquote_to_bytes(raw[len(_KV_PREFIX) :]).decode()
        except UnicodeDecodeError:
            raise InvalidKey("The key is not valid UTF-8 once percent-decoded.") from None
    return routed.removeprefix("/")  # a server that gives no raw_path: the decoded path is all there is


@get(KV_PATH)
async def kv_keys(
    request: AppRequest, spark_kv: NamedDependency[KvService], collection: FromQuery[str | None] = None
) -> list[str]:
    return await spark_kv.keys(_space(request, spark_kv, collection))


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
def spark_user(request: AppRequest) -> SparkUser:
    return user_of(request.principal)


@post("/_spark/loaded", status_code=204)
async def spark_loaded(request: AppRequest) -> None:
    try:
        loaded = request.decoder.decode(await request.body() or b"{}", type=Loaded)
    except ValidationFailed:  # Spark's client expects a 400 for any body it did not mean to send
        raise MalformedBody('Send {"url": ..., "load_ms": ...} as JSON.') from None
    record_load(loaded.load_ms)


route_handlers = [kv_keys, kv_get, kv_set, kv_delete, spark_user, spark_loaded]
