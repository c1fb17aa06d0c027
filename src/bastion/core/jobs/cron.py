"""``POST /cron/{job}``: run one declared job now, for an external scheduler (Vercel cron, a Kubernetes CronJob,
cron and curl). Any job of any module is there by its name (``GET /admin/jobs`` lists them):

    curl -fsS -X POST -H "Authorization: Bearer $BASTION_CRON_SECRET" https://api.example.com/cron/messaging.redrive

* The secret is core setting ``cron_secret`` (``BASTION_CRON_SECRET``), compared in constant time. Unset, the
  route answers 404 (production refuses to start without a strong one); a missing or wrong one is a 401 with
  ``WWW-Authenticate``, checked before the job's name so that the names are not guessed without it.
* The run is the runner's (``JobRunner.run_now``): the job's timeout, log line and metrics, always recorded in
  the run log. It is refused with a 409 while the job runs in this worker, or when it runs once per cluster and
  another instance holds its lease (that instance runs it on its schedule); 503 when the lease store is down.
* 200 with the run (its count in ``result``) when it succeeded; a failed run is a 500 problem and a run past its
  timeout a 504, so that the scheduler's own alerting sees them; details in ``GET /admin/jobs/{name}/runs``.
* Tier ``cron`` (60/minute, fails closed), bodies of at most 256 bytes (none is read).

AppError
├── NotFound
│   └── JobNotFound            404 JOB_NOT_FOUND
├── Conflict
│   └── JobBusyProblem         409 JOB_BUSY
├── JobFailed                  500 JOB_FAILED        (the exception's class name, never its message)
└── GatewayTimeout
    └── JobTimedOut            504 JOB_TIMEOUT
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING, Literal

import msgspec
from litestar import Router, post
from litestar.params import FromPath

from bastion.core.dependencies import AppRequest
from bastion.core.edge.asgi import RoutePolicy
from bastion.core.edge.routes import RouteGroup
from bastion.core.errors import AppError, Conflict, GatewayTimeout, NotFound, ServiceUnavailable, Unauthorized
from bastion.core.jobs.runner import JobBusy, LeaseUnavailable

if TYPE_CHECKING:
    from bastion.core.jobs.runner import JobRunner
    from bastion.core.platform import Platform


class JobNotFound(NotFound):
    code, title = "JOB_NOT_FOUND", "No such job"


class JobBusyProblem(Conflict):
    code, title = "JOB_BUSY", "Job already running"


class JobFailed(AppError):
    status, code, title = 500, "JOB_FAILED", "Job run failed"


class JobTimedOut(GatewayTimeout):
    code, title = "JOB_TIMEOUT", "Job run timed out"


class CronRun(msgspec.Struct, kw_only=True):
    """A run started by ``POST /cron/{job}`` that succeeded."""

    job: str
    outcome: Literal["ok"]
    duration_ms: int
    result: int | None
    """The count the run returned, if it returned one."""


@post("/cron/{job:str}", status_code=200, operation_id="runJobNow")
async def run_job_now(request: AppRequest, job: FromPath[str]) -> CronRun:
    """Run the declared job now (``Authorization: Bearer <BASTION_CRON_SECRET>``)."""
    platform: Platform = request.app.state.platform
    runner: JobRunner = request.app.state.jobs
    secret = platform.settings.cron_secret
    if secret is None:
        raise NotFound("Cron runs are off: BASTION_CRON_SECRET is not set.")
    if not authorized(request.headers.get("authorization"), secret.get_secret_value()):
        raise Unauthorized("A valid cron secret is required.", headers={"WWW-Authenticate": 'Bearer realm="cron"'})
    if job not in runner.jobs:
        raise JobNotFound(f"No job {job!r} is declared; GET /admin/jobs lists them.")
    try:
        run = await runner.run_now(job)
    except JobBusy as exc:
        raise JobBusyProblem(str(exc)) from exc
    except LeaseUnavailable as exc:
        raise ServiceUnavailable(str(exc), retry_after=5) from exc
    where = f"see GET /admin/jobs/{job}/runs"
    if run.outcome == "failed":
        raise JobFailed(f"The run of {job!r} failed ({run.error}); {where}.")
    if run.outcome == "timeout":
        raise JobTimedOut(f"The run of {job!r} passed its timeout and was cancelled; {where}.")
    if run.outcome == "cancelled":
        raise ServiceUnavailable(f"The run of {job!r} was cancelled (shutting down); {where}.")
    return CronRun(job=job, outcome="ok", duration_ms=run.duration_ms, result=run.result)


def authorized(header: str | None, secret: str) -> bool:
    """``Authorization: Bearer <secret>``, the token compared in constant time (the scheme in any case)."""
    scheme, _, token = (header or "").partition(" ")
    given = token.strip().encode()
    # compare_digest on every request, even a header of the wrong scheme, so that timing says nothing
    matches = hmac.compare_digest(given, secret.encode())
    return scheme.lower() == "bearer" and matches


cron_router = Router(path="/", route_handlers=[run_job_now], tags=["jobs"])

CRON_ROUTE_GROUPS = [RouteGroup("/cron", RoutePolicy(tier="cron", max_body_bytes=256, media_types=()))]
