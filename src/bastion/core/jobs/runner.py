"""The one loop that runs a worker's declared jobs (``ModuleParts.jobs``), started once the worker is ready.

    runner = JobRunner.for_platform(platform, [job for part in parts for job in part.jobs])
    runner.start()                       # in the app's lifespan, after the modules' on_startup hooks

Each job gets a task of its own that waits until the job is due (``Job.delay``: the schedule with its jitter),
runs it under its timeout, then computes the next due time, so one job never runs twice at once in a worker
and a slow run delays only itself. Every run ends in one log line (``job run``: job, outcome, duration_ms,
result when it is a count; at debug level for a success of a job with ``record_success=False``), in the
metrics (``bastion_job_runs_total{job,outcome}``, ``bastion_job_run_duration_seconds{job}``,
``bastion_job_last_success_timestamp_seconds{job}``) and, for failures always and successes unless the job
opts out, in the run log (``runlog.py``), written best-effort. A run that raises, times out or is cancelled
never stops the loop.

``once_per_cluster`` jobs hold a lease (``leases/``) named after the job: at each due time the worker asks for
it (which renews it when the worker holds it already) and runs the job only if it holds it. The holder keeps
it while it lives, renewing every third of the TTL between runs too, so that other instances, whose due times
differ by their jitter, do not run the job again in the same period; it releases it when it drains, and if
it dies, another instance takes over at its first due time after the TTL.

``run_now(name)`` runs a job at once, outside its schedule (``POST /cron/{job}``, ``cron.py``): the same run (timeout,
log line, metrics), always recorded; refused (:class:`JobBusy`) while it runs in this worker or another instance
holds its lease, which a ``once_per_cluster`` job asks for first as at a due time.

Drain (through :class:`~bastion.core.lifecycle.Lifecycle`): jobs waiting for their due time stop at once; a run
in progress gets the grace period to finish, then is cancelled (and recorded as ``cancelled``); the leases held
are released last.
"""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from bastion.core import metrics
from bastion.core.jobs.leases import Leases, leases_for
from bastion.core.jobs.runlog import Outcome, Run, RunLog
from bastion.core.jobs.spec import Cron, Job, Periodic
from bastion.core.logging import get_logger

if TYPE_CHECKING:
    from bastion.core.lifecycle import Lifecycle
    from bastion.core.platform import Platform

log = get_logger("bastion.jobs")

LEASE_TTL_SECONDS = 30.0
"""How long a dead holder keeps a ``once_per_cluster`` job from running elsewhere; renewed every third of it."""
RECORD_TIMEOUT_SECONDS = 5.0
"""The longest a run-log write may take: the run is over, its record must not hold the loop."""
CANCEL_WAIT_SECONDS = 5.0
"""How long a cancelled run may take to unwind (its ``finally`` blocks) before the loop goes on without it."""


class Clock(Protocol):
    """The runner's time: Unix time for schedules and the run log, a monotonic clock for durations, and sleep.
    Tests pass a fake one that moves only when told (``tests/support.py:FakeClock``)."""

    def time(self) -> float: ...

    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@dataclass
class JobState:
    """What this worker knows of a job: when it is next due here, whether it is running, how it went."""

    next_due_at: float | None = None
    running: bool = False
    runs: int = 0
    skipped: int = 0
    """Due times at which another instance held the job's lease."""
    last_outcome: Outcome | None = None


class JobBusy(Exception):
    """The job runs in this worker already, or another instance holds its lease."""


class LeaseUnavailable(Exception):
    """The lease store did not answer, so nobody can know who may run the job."""


class JobRunner:
    def __init__(
        self,
        jobs: Sequence[Job],
        *,
        lifecycle: Lifecycle,
        leases: Leases,
        run_log: RunLog | None = None,
        holder: str | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        lease_ttl: float = LEASE_TTL_SECONDS,
    ) -> None:
        check_jobs(jobs)
        self.jobs: dict[str, Job] = {job.name: job for job in jobs}
        self.states = {name: JobState() for name in self.jobs}
        self.lifecycle = lifecycle
        self.leases = leases
        self.run_log = run_log
        self.holder = holder or worker_id()
        self.clock: Clock = clock or SystemClock()
        self.rng = rng or random.Random()  # jitter, not secrecy
        self.lease_ttl = lease_ttl
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._held: set[str] = set()
        self._now: set[str] = set()
        """Jobs run by ``run_now`` at this moment; their loops skip a due time that falls meanwhile."""
        self._stopping = False
        self._hooked = False
        self._changed: asyncio.Event | None = None

    @classmethod
    def for_platform(cls, platform: Platform, jobs: Sequence[Job]) -> JobRunner:
        """The runner of an app: the modules' jobs and the core's own (pruning the run log; the periodic reports,
        per worker), leases in Redis when configured else in SQL, the run log in SQL."""
        run_log = RunLog(platform.db)
        core = [Periodic(name="core.prune-job-runs", every=3600.0, run=run_log.prune, once_per_cluster=True)]
        reports = platform.reports
        if reports is not None and reports.settings.enabled:
            # every worker reports its own routes and memory; no jitter, so windows keep their length
            every = reports.settings.every_seconds
            core.append(Periodic(name="core.reports", every=every, jitter=0.0, run=reports.run, record_success=False))
        return cls([*jobs, *core], lifecycle=platform.lifecycle, leases=leases_for(platform), run_log=run_log)

    # -- start and stop ---------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start every job's loop, and hook the runner into the worker's drain. Idempotent while the loops run
        (one app served twice at once, as tests do, runs its jobs once); after a drain it starts them again."""
        if any(not task.done() for task in self._tasks.values()):
            return
        if not self._hooked:
            self._hooked = True
            self.lifecycle.subscribe(self._stop)
            self.lifecycle.finish_on_drain("jobs", self._until_idle)
            self.lifecycle.on_close("job-leases", self.release_leases)
        if self.lifecycle.draining:
            return  # told to stop before it started: the drain has already called its subscribers
        self._stopping = False
        for job in self.jobs.values():
            self._tasks[job.name] = self.lifecycle.spawn(self._loop(job), f"job:{job.name}")
        if any(job.once_per_cluster for job in self.jobs.values()):
            self.lifecycle.spawn(self._keep_leases(), "job-leases")

    def _stop(self) -> None:
        """Drain began: no new runs; loops waiting for their due time end now, running ones after their run."""
        self._stopping = True
        for name, task in self._tasks.items():
            if not self.states[name].running:
                task.cancel()
        self._notify()

    async def _until_idle(self) -> None:
        running = [task for task in self._tasks.values() if not task.done()]
        if running:
            await asyncio.wait(running)

    async def release_leases(self) -> None:
        """Give up every lease this worker holds, so another instance takes over at once (at shutdown)."""
        for name in sorted(self._held):
            try:
                await self.leases.release(name, self.holder)
            except Exception as exc:
                log.warning("job lease release failed; it expires by itself", job=name, error=type(exc).__name__)
            self._set_held(name, False)

    async def until(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` holds, checked each time a job's run ends or is skipped (tests, tools)."""
        while not predicate():
            if self._changed is None:
                self._changed = asyncio.Event()
            await self._changed.wait()

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    # -- one job's loop ---------------------------------------------------------------------------------------

    async def _loop(self, job: Job) -> None:
        state = self.states[job.name]
        first = True
        while not self._stopping:
            delay = 0.0 if first and job.run_at_start else job.delay(self.clock.time(), self.rng)
            first = False
            state.next_due_at = self.clock.time() + delay
            await self.clock.sleep(delay)
            # No await between waking and this flag: a drain that cancels idle loops never cuts a run short.
            state.running = True
            try:
                if job.name in self._now or (job.once_per_cluster and not await self._acquire(job)):
                    state.skipped += 1
                elif not self._stopping:  # draining began while the lease was asked for
                    await self._run(job, state)
            finally:
                state.running = False
                state.next_due_at = None
                self._notify()

    async def _acquire(self, job: Job) -> bool:
        try:
            held = await self.leases.acquire(job.name, self.holder, self.lease_ttl)
        except Exception as exc:
            # Without the lease store nobody can know who runs it; skipping one run beats running it twice.
            log.warning("job lease unavailable; run skipped", job=job.name, error=type(exc).__name__)
            return False
        self._set_held(job.name, held)
        return held

    def _set_held(self, name: str, held: bool) -> None:
        if held:
            self._held.add(name)
        else:
            self._held.discard(name)
        metrics.job_lease_held.labels(name).set(1 if held else 0)

    async def _keep_leases(self) -> None:
        """Renew the leases this worker holds every third of their TTL, between runs as during them."""
        while True:
            await self.clock.sleep(self.lease_ttl / 3)
            for name in sorted(self._held):
                try:
                    kept = await self.leases.acquire(name, self.holder, self.lease_ttl)
                except Exception as exc:
                    # The lease may well outlive a short outage; the next due time asks again before running.
                    log.warning("job lease renewal failed", job=name, error=type(exc).__name__)
                    continue
                if not kept:
                    # Only after this worker missed renewals for a whole TTL (a stall, a partition). A run in
                    # progress is left to finish: jobs are written to be safe to repeat.
                    self._set_held(name, False)
                    log.warning("job lease taken over by another instance", job=name, running=self.states[name].running)

    # -- one run ----------------------------------------------------------------------------------------------

    async def run_now(self, name: str) -> Run:
        """Run the declared job ``name`` now and return its run (``KeyError``: not declared)."""
        job, state = self.jobs[name], self.states[name]
        if state.running or name in self._now:
            raise JobBusy(f"job {name!r} is running in this instance; try again when it ends")
        self._now.add(name)
        try:
            if job.once_per_cluster:
                try:
                    held = await self.leases.acquire(name, self.holder, self.lease_ttl)
                except Exception as exc:
                    raise LeaseUnavailable(f"job {name!r}: the lease store did not answer") from exc
                self._set_held(name, held)
                if not held:
                    raise JobBusy(f"job {name!r} runs once per cluster and another instance holds its lease")
            return await self._run(job, state, always_record=True)
        finally:
            self._now.discard(name)
            self._notify()

    async def _run(self, job: Job, state: JobState, *, always_record: bool = False) -> Run:
        started, began = self.clock.time(), self.clock.monotonic()
        try:
            outcome, result, error = await self._execute(job)
        except asyncio.CancelledError:
            await self._conclude(job, state, started, began, ("cancelled", None, None), always_record)
            raise
        return await self._conclude(job, state, started, began, (outcome, result, error), always_record)

    async def _execute(self, job: Job) -> tuple[Outcome, object, BaseException | None]:
        """Run ``job`` once in a task of its own, raced against its timeout on the runner's clock."""
        loop = asyncio.get_running_loop()
        task = loop.create_task(_call(job), name=f"job-run:{job.name}")
        timer = loop.create_task(self.clock.sleep(job.timeout_seconds))
        try:
            await asyncio.wait((task, timer), return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            await _cancel(task)
            raise
        finally:
            timer.cancel()
        if not task.done():
            await _cancel(task)
            return "timeout", None, None
        if task.cancelled():
            return "cancelled", None, None
        error = task.exception()
        if error is not None:
            return "failed", None, error
        return "ok", task.result(), None

    async def _conclude(
        self,
        job: Job,
        state: JobState,
        started: float,
        began: float,
        ended: tuple[Outcome, object, BaseException | None],
        always_record: bool,
    ) -> Run:
        """The run's log line, metrics, state and run-log row."""
        outcome, result, error = ended
        finished = self.clock.time()
        seconds = max(0.0, self.clock.monotonic() - began)
        count = result if isinstance(result, int) and not isinstance(result, bool) else None
        metrics.job_runs.labels(job.name, outcome).inc()
        metrics.job_duration.labels(job.name).observe(seconds)
        if outcome == "ok":
            metrics.job_last_success.labels(job.name).set(finished)
        state.runs += 1
        state.last_outcome = outcome
        fields: dict[str, Any] = {"job": job.name, "outcome": outcome, "duration_ms": round(seconds * 1000)}
        if count is not None:
            fields["result"] = count
        error_name = None if error is None else type(error).__name__
        if outcome == "ok":
            # A job that keeps its successes out of the run log runs too often for them to be news in the log.
            (log.info if job.record_success else log.debug)("job run", **fields)
        elif outcome == "failed":
            # The traceback goes to the log, scrubbed like every exception; the run log keeps the class only.
            log.error("job run", error=error_name, exc_info=error, **fields)
        else:
            log.warning("job run", timeout_seconds=job.timeout_seconds, **fields)
        run = Run(
            job=job.name,
            worker=self.holder,
            started_at=started,
            finished_at=finished,
            duration_ms=round(seconds * 1000),
            outcome=outcome,
            error=error_name,
            result=count,
        )
        if outcome != "ok" or job.record_success or always_record:
            await self._record(run)
        return run

    async def _record(self, run: Run) -> None:
        if self.run_log is None:
            return
        try:
            await asyncio.wait_for(self.run_log.record(run), RECORD_TIMEOUT_SECONDS)
        except Exception as exc:
            log.warning("job run log write failed", job=run.job, outcome=run.outcome, error=type(exc).__name__)


async def _call(job: Job) -> object:
    return await job.run()


async def _cancel(task: asyncio.Task[object]) -> None:
    """Cancel a run and give it a moment to unwind; its outcome is already decided by the caller."""
    task.cancel()
    done, _ = await asyncio.wait((task,), timeout=CANCEL_WAIT_SECONDS)
    if not done:
        log.warning("job run ignores its cancellation; left behind", task=task.get_name())
    elif not task.cancelled():
        task.exception()  # retrieved, so that asyncio does not report it as never retrieved


def check_jobs(jobs: Sequence[Job]) -> None:
    """Names unique, kinds known: errors when the app is built rather than when a job is first due."""
    names = [job.name for job in jobs]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ValueError(f"jobs declared twice: {twice}")
    for job in jobs:
        if not isinstance(job, Periodic | Cron):
            raise TypeError(f"job {job.name!r} is a {type(job).__name__}; declare a Periodic or a Cron")


def worker_id() -> str:
    """This worker's name in leases and the run log: host, process, and a random tag (two apps in one process
    are two holders)."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{secrets.token_hex(4)}"
