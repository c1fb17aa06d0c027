"""The Spark KV store and the Spark user, as plain async Python over the SQL database.

    kv = KvService(platform.db, settings.spark)
    space = Namespace(app="my-app", collection="")
    await kv.put(space, "todos", b'[{"title": "milk"}]')
    await kv.put(space, "todos", b"[]", initial=True)      # a no-op: the key exists
    text = await kv.get(space, "todos")                     # '[{"title": "milk"}]'

Keys and values are data: a key is any string of 1-512 characters without control characters
(slashes, percent signs and any Unicode included); a value is the JSON text the client sent, at most
1 MiB, returned byte for byte. Writes are one statement each: an upsert, or for an *initial* value an
insert that does nothing when the key exists, so concurrent writers can never overwrite an existing
value with an initial one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite

from bastion.core import metrics
from bastion.core.db import Database
from bastion.core.dbguard import DatabaseGuard
from bastion.core.errors import MalformedBody
from bastion.core.jsonbody import JsonDecoder
from bastion.core.principal import Principal
from bastion.core.text import has_control_chars
from bastion.spark.errors import InvalidCollection, InvalidKey, InvalidValue, KeyNotFound, ValueTooLarge
from bastion.spark.models import KvEntry
from bastion.spark.schemas import SparkUser
from bastion.spark.settings import SparkSettings

_PRIMARY_KEY = [KvEntry.app, KvEntry.collection, KvEntry.key]


@dataclass(frozen=True, slots=True)
class Namespace:
    """Whose keys: one app (an API key's ``app``, else the configured app name) and a collection."""

    app: str
    collection: str = ""


def namespace_of(
    principal: Principal | None, settings: SparkSettings, collection: str | None = None, *, hosted: str | None = None
) -> Namespace:
    """The namespace a caller's KV calls use: two apps on one Bastion never see each other's keys. On a hosted
    app's host (``hosted``: its name) that app's, whoever calls; else an API key's app, else the configured one."""
    app = settings.app_name
    if hosted is not None:
        app = hosted
    elif principal is not None and principal.kind == "api_key":
        named = principal.attrs.get("app")
        if isinstance(named, str) and named:
            app = named
    if collection is None or collection == "":
        return Namespace(app)
    if len(collection) > settings.max_collection_chars or has_control_chars(collection):
        raise InvalidCollection(
            f"A collection name has 1-{settings.max_collection_chars} characters and no control characters."
        )
    return Namespace(app, collection)


def user_of(principal: Principal) -> SparkUser:
    """``/_spark/user`` for a principal: the user it acts for (an API key, its owner), with what its credential
    carries (identity fills these attributes: email, login and avatar_url)."""
    attrs = principal.attrs
    ident = principal.user_id or principal.id
    return SparkUser(
        avatarUrl=_text(attrs.get("avatar_url")),
        email=_text(attrs.get("email")),
        id=ident,
        isOwner=principal.has_role("owner"),
        login=_text(attrs.get("login")) or ident,
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


class KvService:
    def __init__(self, db: Database, settings: SparkSettings, decoder: JsonDecoder | None = None) -> None:
        self.db = db
        self.settings = settings
        self.decoder = decoder or JsonDecoder()
        self.guard = DatabaseGuard("spark")  # a partitioned database answers 503 at once, not after its timeout
        self._insert: Any = postgresql.insert if db.dialect == "postgresql" else sqlite.insert

    def check_key(self, key: str) -> str:
        if not key or len(key) > self.settings.max_key_chars or has_control_chars(key):
            raise InvalidKey(f"A key has 1-{self.settings.max_key_chars} characters and no control characters.")
        return key

    def check_value(self, body: bytes) -> str:
        if len(body) > self.settings.max_value_bytes:
            raise ValueTooLarge(
                f"A value may be at most {self.settings.max_value_bytes} bytes.",
                extra={"max_bytes": self.settings.max_value_bytes},
            )
        try:
            self.decoder.decode(body)  # validates the JSON and its UTF-8 in one pass, under the app's policy
        except MalformedBody:
            raise InvalidValue("The value must be JSON text, as JSON.stringify produces it.") from None
        return body.decode()

    async def keys(self, space: Namespace) -> AsyncIterator[list[str]]:
        """Every key of ``space`` in key order, a page at a time (keyset pagination: memory stays flat and each
        page is one short read, however many keys there are)."""
        async for page in self._pages(space, with_values=False):
            yield [key for key, _ in page]

    async def entries(self, space: Namespace) -> AsyncIterator[list[tuple[str, str]]]:
        """Every ``(key, JSON text)`` of ``space`` in key order, a page at a time (``@github/spark/db``)."""
        async for page in self._pages(space, with_values=True):
            yield page

    async def _pages(self, space: Namespace, *, with_values: bool) -> AsyncIterator[list[tuple[str, str]]]:
        size = self.settings.list_page_size
        columns: Any = (KvEntry.key, KvEntry.value) if with_values else (KvEntry.key, KvEntry.key)
        after: str | None = None
        while True:
            query = (
                select(*columns)
                .where(KvEntry.app == space.app, KvEntry.collection == space.collection)
                .order_by(KvEntry.key)
                .limit(size)
            )
            if after is not None:
                query = query.where(KvEntry.key > after)

            async def read(query: Any = query) -> list[tuple[str, str]]:
                async with self.db.session() as session:
                    return [(row[0], row[1]) for row in (await session.execute(query)).all()]

            page = await self.guard.read(read)
            if page:
                yield page
            if len(page) < size:
                return
            after = page[-1][0]

    async def get(self, space: Namespace, key: str) -> str:
        self.check_key(key)
        query = select(KvEntry.value).where(
            KvEntry.app == space.app, KvEntry.collection == space.collection, KvEntry.key == key
        )

        async def read() -> str | None:
            async with self.db.session() as session:
                found: str | None = await session.scalar(query)
                return found

        value = await self.guard.read(read)
        if value is None:
            raise KeyNotFound("No value is stored under this key.")
        return value

    async def put(self, space: Namespace, key: str, body: bytes, *, initial: bool = False) -> bool:
        """Store ``body`` under ``key``; with ``initial`` only if the key is missing. True if it was stored."""
        self.check_key(key)
        text = self.check_value(body)
        row = {
            "app": space.app,
            "collection": space.collection,
            "key": key,
            "value": text,
            "updated_at": dt.datetime.now(dt.UTC),
        }
        statement = self._insert(KvEntry).values(**row)
        if initial:
            statement = statement.on_conflict_do_nothing(index_elements=_PRIMARY_KEY)
        else:
            statement = statement.on_conflict_do_update(
                index_elements=_PRIMARY_KEY,
                set_={"value": statement.excluded.value, "updated_at": statement.excluded.updated_at},
            )

        async def write() -> bool:
            async with self.db.transaction() as session:
                result = await session.execute(statement)
            return bool(getattr(result, "rowcount", 1))

        return await self.guard.write(write)

    async def delete(self, space: Namespace, key: str) -> None:
        self.check_key(key)
        statement = delete(KvEntry).where(
            KvEntry.app == space.app, KvEntry.collection == space.collection, KvEntry.key == key
        )

        async def write() -> None:
            async with self.db.transaction() as session:
                await session.execute(statement)

        await self.guard.write(write)


_page_loads = metrics.histogram(
    "spark_page_load_seconds",
    "Page load times reported by Spark apps",
    buckets=(0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0),
)


def record_load(load_ms: float) -> None:
    """A page load reported by the Spark client (``POST /_spark/loaded``); the URL is not kept: it may
    carry tokens in its query, and as a label it would have no bound."""
    _page_loads.observe(load_ms / 1000.0)
