"""SQL leases: a row per lease in ``core_job_lease`` (name, holder, expiry in epoch milliseconds).

``acquire`` is one conditional upsert, ``INSERT … ON CONFLICT (name) DO UPDATE … WHERE expires_at_ms <= :now
OR holder = :me RETURNING holder``: a row comes back only when this call inserted or took over the lease.
PostgreSQL serialises concurrent upserts of one name on its row lock and re-checks the condition against the
committed row; SQLite has one writer at a time. Either way exactly one of any number of callers wins.

Expiry is judged by the callers' clocks (``clock``, Unix time). A holder renews every third of the TTL, so
instances whose clocks disagree by less than two thirds of it (NTP keeps them within milliseconds) never see
a live lease as expired.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import delete, or_
from sqlalchemy.dialects import postgresql, sqlite

from bastion.core.db import Database
from bastion.core.models import JobLeaseRow


class SqlLeases:
    def __init__(self, db: Database, *, clock: Callable[[], float] = time.time) -> None:
        if db.dialect not in ("postgresql", "sqlite"):
            raise ValueError(f"SQL leases support PostgreSQL and SQLite, not {db.dialect}")
        self.db = db
        self.clock = clock
        self._insert: Any = postgresql.insert if db.dialect == "postgresql" else sqlite.insert

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    async def acquire(self, name: str, holder: str, ttl: float) -> bool:
        now = self._now_ms()
        row = JobLeaseRow.__table__.c
        stmt = self._insert(JobLeaseRow).values(name=name, holder=holder, expires_at_ms=now + max(1, int(ttl * 1000)))
        stmt = stmt.on_conflict_do_update(
            index_elements=[row.name],
            set_={"holder": stmt.excluded.holder, "expires_at_ms": stmt.excluded.expires_at_ms},
            where=or_(row.expires_at_ms <= now, row.holder == holder),
        ).returning(row.holder)
        async with self.db.begin() as conn:
            won = (await conn.execute(stmt)).first()
        return won is not None

    async def release(self, name: str, holder: str) -> bool:
        row = JobLeaseRow.__table__.c
        stmt = delete(JobLeaseRow).where(row.name == name, row.holder == holder, row.expires_at_ms > self._now_ms())
        async with self.db.begin() as conn:
            result = await conn.execute(stmt)
        return bool(result.rowcount)
