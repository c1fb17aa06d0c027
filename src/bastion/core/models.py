"""The core's own SQL tables (Alembic branch ``core``, in ``bastion/migrations/versions``). Times are epoch
milliseconds, as in the modules' tables: exact, and compared the same way on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import BigInteger, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from bastion.core.db import Base

# BIGINT on PostgreSQL; plain INTEGER on SQLite, where only INTEGER PRIMARY KEY autoincrements.
RowId = BigInteger().with_variant(Integer(), "sqlite")


class JobLeaseRow(Base):
    """Who runs a ``once_per_cluster`` job, until when (see ``core/jobs/leases/sql.py``)."""

    __tablename__ = "core_job_lease"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    holder: Mapped[str] = mapped_column(String(100))
    expires_at_ms: Mapped[int] = mapped_column(BigInteger)


class JobRunRow(Base):
    """One finished run of a job: failures always, successes unless the job opts out. ``error`` is the
    exception's class name only: its message may carry data. Pruned by the core's own job."""

    __tablename__ = "core_job_run"

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    job: Mapped[str] = mapped_column(String(100))
    worker: Mapped[str] = mapped_column(String(100))
    started_at_ms: Mapped[int] = mapped_column(BigInteger)
    finished_at_ms: Mapped[int] = mapped_column(BigInteger)
    duration_ms: Mapped[int] = mapped_column(BigInteger)
    outcome: Mapped[str] = mapped_column(String(16))
    """``ok``, ``failed``, ``timeout`` or ``cancelled``."""
    error: Mapped[str | None] = mapped_column(String(200))
    result: Mapped[int | None] = mapped_column(BigInteger)
    """What the run returned, when it was a count."""

    __table_args__ = (Index("ix_core_job_run_job_started", "job", "started_at_ms"),)
