"""The ``workflows.reanalyse`` job: runs the re-analyses GHL webhooks queued (a workflow's new version).

Rows are claimed one at a time with a conditional UPDATE (so the workers and instances that all run this job
never take the same one), analysed, then deleted. A failure leaves the row to be claimed again when its
claim expires (the back-off), up to ``MAX_ATTEMPTS``; a version superseded by a newer one is dropped.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import delete, select, update

from bastion.core.db import Database
from bastion.core.errors import AppError
from bastion.core.logging import get_logger
from bastion.workflows.errors import DefinitionUnavailable, GhlReconnectRequired, InvalidDefinition
from bastion.workflows.models import ReanalysisRow, WorkflowRow
from bastion.workflows.service import WorkflowsService

log = get_logger("bastion.workflows")
MAX_ATTEMPTS = 5
CLAIM_MS = 60_000
_GIVE_UP = (DefinitionUnavailable, GhlReconnectRequired, InvalidDefinition)  # retrying will not help


class Reanalyser:
    def __init__(
        self, db: Database, service: WorkflowsService, *, batch: int = 20, clock: Callable[[], float] = time.time
    ) -> None:
        self.db = db
        self.service = service
        self.batch = batch
        self.clock = clock

    async def run(self) -> int:
        """One pass over the queue; returns how many analyses were made."""
        now = int(self.clock() * 1000)
        async with self.db.session() as session:
            ids = list(
                await session.scalars(
                    select(ReanalysisRow.id)
                    .where(ReanalysisRow.claimed_until_ms < now)
                    .order_by(ReanalysisRow.queued_at_ms, ReanalysisRow.id)
                    .limit(self.batch)
                )
            )
        done = 0
        for job_id in ids:
            done += await self._one(job_id, now)
        return done

    async def _one(self, job_id: str, now: int) -> int:
        async with self.db.begin() as conn:
            claimed = await conn.execute(
                update(ReanalysisRow)
                .where(ReanalysisRow.id == job_id, ReanalysisRow.claimed_until_ms < now)
                .values(claimed_until_ms=now + CLAIM_MS, attempts=ReanalysisRow.attempts + 1)
            )
        if claimed.rowcount != 1:
            return 0  # another worker has it
        async with self.db.session() as session:
            job = await session.get(ReanalysisRow, job_id)
            row = await session.get(WorkflowRow, job.workflow_id) if job is not None else None
        if job is None:
            return 0
        if row is None or row.version != job.version:
            await self._drop(job_id)  # the workflow is gone, or a newer version has a job of its own
            return 0
        try:
            wf = await self.service.definition_of(row)
            await self.service.run(row.user_id, row, wf)
        except _GIVE_UP as exc:
            log.info("re-analysis dropped", workflow_id=row.id, reason=exc.code)
            await self._drop(job_id)
            return 0
        except (AppError, OSError) as exc:
            if job.attempts + 1 >= MAX_ATTEMPTS:
                log.warning(
                    "re-analysis given up", workflow_id=row.id, attempts=job.attempts + 1, error=type(exc).__name__
                )
                await self._drop(job_id)
            return 0
        await self._drop(job_id)
        return 1

    async def _drop(self, job_id: str) -> None:
        async with self.db.begin() as conn:
            await conn.execute(delete(ReanalysisRow).where(ReanalysisRow.id == job_id))
