"""The run log: one row per finished job run in ``core_job_run``, shared by every worker and instance.

    log = RunLog(platform.db)
    await log.record(Run(job="secrets.purge", worker="host:42:ab12", started_at=t0, finished_at=t1,
                         duration_ms=12, outcome="ok", error=None, result=3))
    await log.recent("secrets.purge", limit=20)      # newest first
    await log.prune()                               # older than the retention, or past the newest N per job

Writes are the runner's business to make best-effort (a failure is logged, never fails the job); this class
just talks to the database, through ``db.begin()`` so that SQLite's writer turn applies.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Row, Select, delete, insert, select

from bastion.core.db import Database
from bastion.core.models import JobRunRow

Outcome = Literal["ok", "failed", "timeout", "cancelled"]
RETENTION_SECONDS = 30 * 86_400
KEEP_PER_JOB = 1000


@dataclass(frozen=True, slots=True)
class Run:
    """A finished run. Times are Unix seconds; ``error`` is an exception class name, never its message."""

    job: str
    worker: str
    started_at: float
    finished_at: float
    duration_ms: int
    outcome: Outcome
    error: str | None = None
    result: int | None = None


@dataclass(frozen=True, slots=True)
class Summary:
    """A job's latest run, latest success and latest failure (timeouts and cancellations count as failures)."""

    last_run: Run | None
    last_success: Run | None
    last_failure: Run | None


class RunLog:
    def __init__(
        self,
        db: Database,
        *,
        retention_seconds: float = RETENTION_SECONDS,
        keep_per_job: int = KEEP_PER_JOB,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.retention_seconds = retention_seconds
        self.keep_per_job = keep_per_job
        self.clock = clock

    async def record(self, run: Run) -> None:
        values = {
            "job": run.job,
            "worker": run.worker[:100],
            "started_at_ms": int(run.started_at * 1000),
            "finished_at_ms": int(run.finished_at * 1000),
            "duration_ms": run.duration_ms,
            "outcome": run.outcome,
            "error": None if run.error is None else run.error[:200],
            "result": run.result,
        }
        async with self.db.begin() as conn:
            await conn.execute(insert(JobRunRow).values(**values))

    async def recent(self, job: str, limit: int) -> list[Run]:
        """The newest ``limit`` runs of ``job``, newest first."""
        query = _newest(job).limit(limit)
        async with self.db.engine.connect() as conn:
            return [_run(row) for row in await conn.execute(query)]

    async def summaries(self, jobs: Iterable[str]) -> dict[str, Summary]:
        """Each job's latest run, success and failure: three indexed lookups per job, on one connection."""
        found: dict[str, Summary] = {}
        c = JobRunRow.__table__.c
        async with self.db.engine.connect() as conn:
            for job in jobs:
                latest = [
                    (await conn.execute(query.limit(1))).first()
                    for query in (
                        _newest(job),
                        _newest(job).where(c.outcome == "ok"),
                        _newest(job).where(c.outcome != "ok"),
                    )
                ]
                found[job] = Summary(*(None if row is None else _run(row) for row in latest))
        return found

    async def prune(self) -> int:
        """Drop runs older than the retention and, per job, all but the newest ``keep_per_job``; the count."""
        c = JobRunRow.__table__.c
        cutoff = int((self.clock() - self.retention_seconds) * 1000)
        dropped = 0
        async with self.db.engine.connect() as conn:
            jobs = list((await conn.execute(select(c.job).distinct())).scalars())
        for job in jobs:
            nth = select(c.id).where(c.job == job).order_by(c.id.desc()).offset(self.keep_per_job).limit(1)
            stale = delete(JobRunRow).where(c.job == job, (c.started_at_ms < cutoff) | (c.id <= nth.scalar_subquery()))
            # one short transaction per job, so that SQLite's writer turn is never held for long
            async with self.db.begin() as conn:
                dropped += (await conn.execute(stale)).rowcount or 0
        return dropped


def _newest(job: str) -> Select[Any]:
    c = JobRunRow.__table__.c
    return select(JobRunRow.__table__).where(c.job == job).order_by(c.started_at_ms.desc(), c.id.desc())


def _run(row: Row[Any]) -> Run:
    r = row._mapping
    return Run(
        job=r["job"],
        worker=r["worker"],
        started_at=r["started_at_ms"] / 1000,
        finished_at=r["finished_at_ms"] / 1000,
        duration_ms=r["duration_ms"],
        outcome=r["outcome"],
        error=r["error"],
        result=r["result"],
    )
