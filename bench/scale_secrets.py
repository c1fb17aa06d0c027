"""The data parts of bench/scale.py: secrets on PostgreSQL with 10^6 rows, Spark KV with 10^5 keys.

``purge``: a fresh database, migrated, filled by one ``INSERT … SELECT generate_series`` with ``--rows``
secrets shaped like a busy week (90 % already viewed or burned: ciphertext gone, row kept for the audit
trail, half of them expired within the last week; 9.5 % live; 0.5 % expired with their ciphertext, for
the purge to drop), then four creators loop (``SqlBackend.create``, each its own client) while the purge
job's ``purge`` runs twice, a second apart (the first after a start, the next as every minute after);
reported: each purge's duration and the creates' latency during it and while idle (a create waits for
the usage row the purge holds, so the worst create is the purge's hold of it), and the time of one sum
over the table (best of three), which the purge before this change ran holding the usage row.

``reveal``: claim latency (``SqlBackend.claim``: the one-statement PostgreSQL claim) of 16 concurrent
revealers over 2,000 live 100-view secrets, in an otherwise empty table and beside ``--rows`` others.

``kv-sqlite``, ``kv-postgres``: one app holding ``--rows`` keys; ``KvService.get`` of random keys (300) and
``KvService.keys`` (``GET /_spark/kv``, which lists at most ``MAX_KEYS_LISTED``, 10,000, in key order).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import secrets
import time
import uuid
from typing import Any

POSTGRES = os.environ.get("BASTION_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")

FILL = """
INSERT INTO secrets_secret (id, ciphertext, size_bytes, client_encrypted, passphrase_hash, views_remaining,
                            max_views, created_at_ms, expires_at_ms, burned_at_ms, owner_id, quota_key,
                            delete_token_hash)
SELECT 'f' || lpad(n::text, 12, '0'),
       CASE WHEN n % 200 = 0 OR n % 10 = 1 THEN decode(repeat('ab', 120), 'hex') END,
       120, false, NULL,
       CASE WHEN n % 10 = 1 THEN 1 ELSE 0 END, 1,
       $1::bigint - 86400000,
       CASE WHEN n % 200 = 0 THEN $1::bigint - 1000 - n
            WHEN n % 2 = 0 THEN $1::bigint - (n % 600000) * 1000
            ELSE $1::bigint + (n % 604800) * 1000 END,
       NULL, NULL, 'c:fill' || (n % 5000), '\\x00'::bytea
FROM generate_series(1, $2::int) AS n
"""


async def _admin(sql: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    conn = await asyncpg.connect(POSTGRES.replace("+asyncpg", ""))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _database(rows: int) -> tuple[str, Any]:
    """A fresh migrated database with ``rows`` filler secrets; returns (name, Database)."""
    from bastion import migrate
    from bastion.core.db import Database
    from bastion.settings import Settings

    name = f"bastion_scale_{uuid.uuid4().hex[:10]}"
    await _admin(f'CREATE DATABASE "{name}"')
    url = POSTGRES.rsplit("/", 1)[0] + "/" + name
    settings = Settings(_env_file=None, database_url=url, db_pool_size=20, db_max_overflow=10)  # type: ignore[call-arg]
    await asyncio.to_thread(migrate.upgrade, settings)
    db = Database.from_settings(settings)
    now = int(time.time() * 1000)
    if rows:
        async with db.driver_connection() as conn:
            await conn.execute(FILL, now, rows)
            await conn.execute(
                "UPDATE secrets_usage SET bytes = (SELECT sum(size_bytes) FROM secrets_secret "
                "WHERE ciphertext IS NOT NULL) WHERE id = 1"
            )
            await conn.execute("VACUUM ANALYZE secrets_secret")
    return name, db


def _new(quota: str) -> Any:
    from bastion.secrets.backends.base import NewSecret

    now = int(time.time() * 1000)
    return NewSecret(
        id=secrets.token_hex(16),
        ciphertext=os.urandom(120),
        client_encrypted=False,
        passphrase_hash=None,
        max_views=1,
        created_at_ms=now,
        expires_at_ms=now + 3_600_000,
        owner_id=None,
        quota_key=quota,
        delete_token_hash=b"\0" * 32,
        creator_client=None,
    )


def _ms(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)


async def purge(rows: int) -> dict[str, Any]:
    from bastion.secrets.backends.base import Limits
    from bastion.secrets.backends.sql import SqlBackend

    name, db = await _database(rows)
    backend = SqlBackend(db)
    limits = Limits(max_total_bytes=1 << 40, max_live=1_000_000)
    sums = []
    async with db.driver_connection() as conn:  # what the purge before the change held the usage row for
        for _ in range(3):
            t0 = time.perf_counter()
            await conn.fetchval("SELECT sum(size_bytes) FROM secrets_secret WHERE ciphertext IS NOT NULL")
            sums.append(time.perf_counter() - t0)
    try:
        idle: list[float] = []
        during: list[float] = []
        sink = idle
        stop = asyncio.Event()

        async def creator(n: int) -> None:
            while not stop.is_set():
                t0 = time.perf_counter()
                await backend.create(_new(f"c:bench{n}"), limits)
                sink.append(time.perf_counter() - t0)

        creators = [asyncio.create_task(creator(n)) for n in range(4)]
        await asyncio.sleep(2.0)
        sink = during
        t0 = time.perf_counter()
        dropped = await backend.purge(int(time.time() * 1000), 7 * 86_400_000)
        took = time.perf_counter() - t0
        sink = idle
        await asyncio.sleep(1.0)
        sink = during
        t1 = time.perf_counter()
        await backend.purge(int(time.time() * 1000), 7 * 86_400_000)
        took_next = time.perf_counter() - t1
        stop.set()
        await asyncio.gather(*creators)
        return {
            "rows": rows,
            "table_sum_ms": round(min(sums) * 1000, 1),
            "purge_s": round(took, 3),
            "next_purge_s": round(took_next, 3),
            "dropped": dropped,
            "create_idle_p50_ms": _ms(idle, 0.5),
            "create_idle_p99_ms": _ms(idle, 0.99),
            "create_during_p50_ms": _ms(during, 0.5) if during else None,
            "create_during_max_ms": _ms(during, 1.0) if during else None,
            "creates_during": len(during),
        }
    finally:
        await db.close()
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def reveal(rows: int, seconds: float = 5.0) -> dict[str, Any]:
    from bastion.secrets.backends.base import Limits
    from bastion.secrets.backends.sql import SqlBackend

    name, db = await _database(rows)
    backend = SqlBackend(db)
    try:
        ids = []
        for n in range(2000):
            secret = _new(f"c:r{n % 50}")
            secret = dataclasses.replace(secret, max_views=100)
            await backend.create(secret, Limits(1 << 40, 1_000_000))
            ids.append(secret.id)
        latencies: list[float] = []
        deadline = time.perf_counter() + seconds

        async def revealer(n: int) -> None:
            i = n
            while time.perf_counter() < deadline:
                t0 = time.perf_counter()
                await backend.claim(ids[i % len(ids)], int(time.time() * 1000), passphrase_checked=True, client=None)
                latencies.append(time.perf_counter() - t0)
                i += 16

        await asyncio.gather(*(revealer(n) for n in range(16)))
        return {
            "rows": rows,
            "claims": len(latencies),
            "per_s": round(len(latencies) / seconds),
            "p50_ms": _ms(latencies, 0.5),
            "p99_ms": _ms(latencies, 0.99),
        }
    finally:
        await db.close()
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run(part: str, rows: int) -> dict[str, Any]:
    if part.startswith("kv-"):
        return asyncio.run(kv(rows, part.removeprefix("kv-")))
    result: dict[str, Any] = asyncio.run(purge(rows) if part == "purge" else reveal(rows))
    return result


async def kv(keys: int, backend: str, rounds: int = 300) -> dict[str, Any]:
    """Spark KV in one app holding ``keys`` keys: ``KvService.get`` of random keys and ``KvService.keys``
    (``GET /_spark/kv``: at most ``MAX_KEYS_LISTED`` keys, in key order)."""
    import datetime as dt
    import random
    import tempfile
    from pathlib import Path

    from sqlalchemy import insert

    from bastion import migrate
    from bastion.core.db import Database
    from bastion.settings import Settings
    from bastion.spark.models import KvEntry
    from bastion.spark.service import KvService, Namespace

    name = f"bastion_scale_{uuid.uuid4().hex[:10]}"
    data_dir = Path(tempfile.mkdtemp(prefix="bastion-scale-kv-"))
    if backend == "postgres":
        await _admin(f'CREATE DATABASE "{name}"')
        url: str | None = POSTGRES.rsplit("/", 1)[0] + "/" + name
    else:
        url = None
    settings = Settings(_env_file=None, database_url=url, data_dir=data_dir)  # type: ignore[call-arg]
    await asyncio.to_thread(migrate.upgrade, settings)
    db = Database.from_settings(settings)
    try:
        now = dt.datetime.now(dt.UTC)
        names = [f"todo:{n:07d}" for n in range(keys)]
        for first in range(0, keys, 5000):
            rows = [
                {"app": "default", "collection": "", "key": k, "value": '{"done":false}', "updated_at": now}
                for k in names[first : first + 5000]
            ]
            async with db.begin() as conn:
                await conn.execute(insert(KvEntry), rows)
        if backend == "postgres":  # statistics as autovacuum would have them by now
            async with db.driver_connection() as conn:
                await conn.execute("ANALYZE spark_kv")
        service = KvService(db, settings.spark)
        space = Namespace("default")
        gets: list[float] = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            await service.get(space, random.choice(names))
            gets.append(time.perf_counter() - t0)
        lists: list[float] = []
        listed = 0
        for _ in range(max(3, rounds // 30)):
            t0 = time.perf_counter()
            listed = 0
            async for page in service.keys(space):  # pages of keys, as GET /_spark/kv streams them
                listed += len(page)
            lists.append(time.perf_counter() - t0)
        return {
            "backend": backend,
            "keys": keys,
            "get_p50_ms": _ms(gets, 0.5),
            "get_p99_ms": _ms(gets, 0.99),
            "list_p50_ms": _ms(lists, 0.5),
            "listed": listed,
        }
    finally:
        await db.close()
        if backend == "postgres":
            await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
