"""Admin routes over the jobs and their run log, for the owner and admins (tier ``general``).

GET /admin/jobs                      every declared job: schedule, once_per_cluster, last run, success, failure
GET /admin/jobs/{name}/runs?limit=   the job's most recent runs, newest first (limit 1 to 200, default 20)

The run log is shared by every worker and instance, so these answer for the whole deployment; ``next_due_at``
is the only field that is this worker's own. ``error`` is an exception class name, never its message.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated, Literal

import msgspec
from litestar import Router, get
from litestar.params import FromPath

from bastion.core.dependencies import AppRequest
from bastion.core.edge.asgi import RoutePolicy
from bastion.core.edge.routes import RouteGroup
from bastion.core.errors import NotFound
from bastion.core.jobs.spec import Cron, Periodic
from bastion.core.pagination import limit_param
from bastion.core.principal import require_role_of

if TYPE_CHECKING:
    from bastion.core.jobs.runlog import Run
    from bastion.core.jobs.runner import JobRunner


class JobRunView(msgspec.Struct, kw_only=True):
    """One finished run of a job."""

    job: str
    worker: str
    started_at: dt.datetime
    finished_at: dt.datetime
    duration_ms: int
    outcome: Literal["ok", "failed", "timeout", "cancelled"]
    error: str | None
    """The exception's class name, for a failed run."""
    result: int | None
    """The count the run returned, if it returned one."""


class JobView(msgspec.Struct, kw_only=True):
    """A declared job and how its runs went, across all instances."""

    name: str
    kind: Literal["periodic", "cron"]
    schedule: str
    every_seconds: float | None
    cron: str | None
    timezone: str | None
    jitter: float
    timeout_seconds: float
    once_per_cluster: bool
    record_success: bool
    """False: successful runs are not in the run log, so ``last_success`` stays empty."""
    next_due_at: dt.datetime | None
    """When this worker next runs (or, for a ``once_per_cluster`` job, asks for the lease); None while running."""
    last_run: JobRunView | None
    last_success: JobRunView | None
    last_failure: JobRunView | None


def _runner(request: AppRequest) -> JobRunner:
    require_role_of(request.principal, "owner", "admin")
    runner: JobRunner = request.app.state.jobs
    return runner


@get("/admin/jobs")
async def list_jobs(request: AppRequest) -> list[JobView]:
    """Every declared job, with its latest run, success and failure from the run log."""
    runner = _runner(request)
    summaries = await runner.run_log.summaries(runner.jobs) if runner.run_log is not None else {}
    views = []
    for name, job in sorted(runner.jobs.items()):
        summary = summaries.get(name)
        due = runner.states[name].next_due_at
        views.append(
            JobView(
                name=name,
                kind="cron" if isinstance(job, Cron) else "periodic",
                schedule=job.schedule,
                every_seconds=job.every if isinstance(job, Periodic) else None,
                cron=job.expression if isinstance(job, Cron) else None,
                timezone=job.timezone if isinstance(job, Cron) else None,
                jitter=job.jitter,
                timeout_seconds=job.timeout_seconds,
                once_per_cluster=job.once_per_cluster,
                record_success=job.record_success,
                next_due_at=None if due is None else _datetime(due),
                last_run=_optional(summary.last_run if summary else None),
                last_success=_optional(summary.last_success if summary else None),
                last_failure=_optional(summary.last_failure if summary else None),
            )
        )
    return views


@get("/admin/jobs/{name:str}/runs")
async def job_runs(
    request: AppRequest,
    name: FromPath[str],
    limit: Annotated[int, limit_param(200)] = 20,
) -> list[JobRunView]:
    """The job's most recent runs, newest first."""
    runner = _runner(request)
    if name not in runner.jobs:
        raise NotFound("No job of that name is declared.")
    if runner.run_log is None:
        return []
    return [_view(run) for run in await runner.run_log.recent(name, limit)]


def _datetime(unix: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(unix, dt.UTC)


def _optional(run: Run | None) -> JobRunView | None:
    return None if run is None else _view(run)


def _view(run: Run) -> JobRunView:
    return JobRunView(
        job=run.job,
        worker=run.worker,
        started_at=_datetime(run.started_at),
        finished_at=_datetime(run.finished_at),
        duration_ms=run.duration_ms,
        outcome=run.outcome,
        error=run.error,
        result=run.result,
    )


jobs_router = Router(path="/", route_handlers=[list_jobs, job_runs], tags=["admin"])

JOBS_ROUTE_GROUPS = [RouteGroup("/admin/jobs", RoutePolicy(tier="general"))]
