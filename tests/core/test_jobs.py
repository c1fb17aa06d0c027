"""The job runner on a fake clock: schedules and jitter, failures, timeouts, overlap, drain, leases and the run
log (on a migrated SQLite database). Declarations (spec.py) and cron times in a time zone are here too."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

import bastion.migrate as migrate
from bastion.core.db import Database
from bastion.core.jobs.leases import Leases, MemoryLeases
from bastion.core.jobs.runlog import Run, RunLog
from bastion.core.jobs.runner import JobRunner
from bastion.core.jobs.spec import Cron, Job, Periodic
from bastion.core.lifecycle import Lifecycle
from bastion.settings import Settings
from tests.support import FakeClock

UTC = dt.UTC


async def _nothing() -> None:
    return None


def _name(kind: str) -> str:
    """A job name of its own per test: the metrics are process-wide."""
    return f"t.{kind}-{uuid.uuid4().hex[:8]}"


def _metric(name: str, job: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(f"bastion_{name}", {"job": job, **labels}) or 0.0


@dataclass
class Calls:
    """A job body that counts its runs and can be held at a gate."""

    results: list[object] = field(default_factory=list)
    gate: asyncio.Event | None = None
    started: asyncio.Event = field(default_factory=asyncio.Event)
    running: int = 0
    most_at_once: int = 0
    count: int = 0
    cancelled: int = 0

    async def __call__(self) -> object:
        self.count += 1
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        self.started.set()
        try:
            if self.gate is not None:
                await self.gate.wait()
            result = self.results.pop(0) if self.results else None
            if isinstance(result, BaseException):
                raise result
            return result
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.running -= 1


async def _migrated(data_dir: Path) -> Database:
    settings = Settings(_env_file=None, data_dir=data_dir)
    await asyncio.to_thread(migrate.upgrade, settings, [])  # the core's branch alone
    return Database.from_settings(settings)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await _migrated(tmp_path / "data")
    try:
        yield database
    finally:
        await database.close()


@dataclass
class Harness:
    clock: FakeClock
    leases: MemoryLeases
    run_log: RunLog
    lifecycles: list[Lifecycle] = field(default_factory=list)

    def runner(
        self,
        *jobs: Job,
        holder: str = "w1",
        grace: float = 5.0,
        leases: Leases | None = None,
        run_log: RunLog | None = None,
    ) -> JobRunner:
        lifecycle = Lifecycle(grace_seconds=grace)
        self.lifecycles.append(lifecycle)
        return JobRunner(
            list(jobs),
            lifecycle=lifecycle,
            leases=leases or self.leases,
            run_log=run_log or self.run_log,
            holder=holder,
            clock=self.clock,
            rng=random.Random(7),
        )


@pytest.fixture
async def harness(db: Database) -> AsyncIterator[Harness]:
    clock = FakeClock()
    h = Harness(clock, MemoryLeases(clock=clock), RunLog(db, clock=clock))
    try:
        yield h
    finally:
        for lifecycle in h.lifecycles:
            if not lifecycle.draining:
                await lifecycle.drain()


async def _until(runner: JobRunner, check: Callable[[], bool]) -> None:
    async with asyncio.timeout(10):
        await runner.until(check)


def _ran(runner: JobRunner, name: str, runs: int) -> Callable[[], bool]:
    """A check that ``name`` has run ``runs`` times in ``runner``."""
    return lambda: runner.states[name].runs == runs


def _ran_or_skipped(runner: JobRunner, name: str, turns: int) -> Callable[[], bool]:
    """A check that ``name`` has come due ``turns`` times in ``runner`` (run, or skipped without the lease)."""
    return lambda: runner.states[name].runs + runner.states[name].skipped == turns


async def _next_period(clock: FakeClock, seconds: float, sleepers: int = 1) -> None:
    """Wait until the runner is idle again (``sleepers`` tasks on the clock), then move time on."""
    async with asyncio.timeout(10):
        await clock.sleeping(sleepers)
    clock.advance(seconds)


# -- declarations -----------------------------------------------------------------------------------------


def test_cron_next_fire_follows_the_time_zone_across_seasons():
    """09:00 in New York is 14:00 UTC in January and 13:00 UTC in July."""
    job = Cron(name="t.cron", expression="0 9 * * *", timezone="America/New_York", run=_nothing)
    assert job.next_fire(dt.datetime(2026, 1, 15, 12, 0, tzinfo=UTC)) == dt.datetime(2026, 1, 15, 14, 0, tzinfo=UTC)
    assert job.next_fire(dt.datetime(2026, 7, 15, 12, 0, tzinfo=UTC)) == dt.datetime(2026, 7, 15, 13, 0, tzinfo=UTC)


def test_cron_firing_in_the_skipped_hour_runs_when_the_clocks_have_moved_on():
    """02:30 Berlin on the spring-forward night (no such time) fires at 03:00 CEST, then 02:30 again."""
    job = Cron(name="t.cron", expression="30 2 * * *", timezone="Europe/Berlin", run=_nothing)
    first = job.next_fire(dt.datetime(2026, 3, 28, 12, 0, tzinfo=UTC))
    assert first == dt.datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    assert job.next_fire(first) == dt.datetime(2026, 3, 30, 0, 30, tzinfo=UTC)


def test_cron_firing_in_the_repeated_hour_runs_once():
    """02:30 Berlin on the fall-back night fires once, then at 02:30 CET the next day."""
    job = Cron(name="t.cron", expression="30 2 * * *", timezone="Europe/Berlin", run=_nothing)
    first = job.next_fire(dt.datetime(2026, 10, 24, 12, 0, tzinfo=UTC))
    # compared in UTC: Python never finds a time in a repeated hour equal to one in another zone (PEP 495)
    assert first.astimezone(UTC) == dt.datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    assert job.next_fire(first).astimezone(UTC) == dt.datetime(2026, 10, 26, 1, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("kind", "fields"),
    [
        (Periodic, {"name": "Bad Name", "every": 1.0}),
        (Periodic, {"name": "t.x", "every": 0.0}),
        (Periodic, {"name": "t.x", "every": 1.0, "jitter": 1.0}),
        (Periodic, {"name": "t.x", "every": 1.0, "timeout": 0.0}),
        (Cron, {"name": "t.x", "expression": "61 * * * *"}),
        (Cron, {"name": "t.x", "expression": "0 0 * * * *"}),
        (Cron, {"name": "t.x", "expression": "0 3 * * *", "timezone": "Mars/Olympus"}),
    ],
)
def test_a_declaration_that_cannot_work_fails_where_it_is_written(kind, fields):
    """Bad names, periods, jitter, timeouts, cron expressions (six fields too) and time zones raise ValueError."""
    with pytest.raises(ValueError, match=r"job|name"):
        kind(run=_nothing, **fields)


def test_a_job_declared_twice_is_refused_when_the_runner_is_built():
    """Two jobs of one name are an error at build time, naming the job."""
    jobs = [
        Periodic(name="t.twice", every=1.0, run=_nothing),
        Cron(name="t.twice", expression="* * * * *", run=_nothing),
    ]
    with pytest.raises(ValueError, match=r"t\.twice"):
        JobRunner(jobs, lifecycle=Lifecycle(grace_seconds=1.0), leases=MemoryLeases())


def test_timeouts_default_to_the_period_or_an_hour():
    """A periodic job's timeout defaults to its period, a cron job's to one hour."""
    assert Periodic(name="t.p", every=30.0, run=_nothing).timeout_seconds == 30.0
    assert Cron(name="t.c", expression="* * * * *", run=_nothing).timeout_seconds == 3600.0


def test_periodic_jitter_keeps_each_wait_within_its_bounds():
    """Waits of a job every 100 s with jitter 0.2 lie in [80, 120] and are spread over most of it."""
    job = Periodic(name="t.p", every=100.0, jitter=0.2, run=_nothing)
    rng = random.Random(1)
    waits = [job.delay(0.0, rng) for _ in range(2000)]
    assert 80.0 <= min(waits) < 82.0 and 118.0 < max(waits) <= 120.0


def test_cron_jitter_delays_within_its_share_of_the_gap():
    """A cron job every 10 minutes with jitter 0.5 runs between its firing and 5 minutes after it."""
    job = Cron(name="t.c", expression="*/10 * * * *", jitter=0.5, run=_nothing)
    now = dt.datetime(2026, 1, 1, 12, 4, tzinfo=UTC).timestamp()  # the next firing is 6 minutes away
    rng = random.Random(1)
    waits = [job.delay(now, rng) for _ in range(2000)]
    assert 360.0 <= min(waits) < 370.0 and 650.0 < max(waits) <= 660.0


def test_cron_without_jitter_runs_on_the_minute():
    """A cron job's default jitter is none: the wait is exactly the time to its firing."""
    job = Cron(name="t.c", expression="17 3 * * *", run=_nothing)
    now = dt.datetime(2026, 1, 1, 3, 16, 30, tzinfo=UTC).timestamp()
    assert job.delay(now, random.Random()) == 30.0


# -- running ----------------------------------------------------------------------------------------------


async def test_a_periodic_job_runs_once_per_period(harness: Harness):
    """Nothing runs before the first period ends; then one run per period."""
    calls = Calls()
    name = _name("periodic")
    runner = harness.runner(Periodic(name=name, every=10.0, jitter=0.0, run=calls))
    runner.start()
    await _next_period(harness.clock, 9.9)
    assert calls.count == 0
    harness.clock.advance(0.1)
    await _until(runner, lambda: runner.states[name].runs == 1)
    await _next_period(harness.clock, 10.0)
    await _until(runner, lambda: runner.states[name].runs == 2)
    assert calls.count == 2 and runner.states[name].last_outcome == "ok"


async def test_run_at_start_runs_as_soon_as_the_runner_starts(harness: Harness):
    """A job marked run_at_start runs without waiting for its first period."""
    calls = Calls()
    name = _name("start")
    runner = harness.runner(Periodic(name=name, every=3600.0, run=calls, run_at_start=True))
    runner.start()
    await _until(runner, lambda: runner.states[name].runs == 1)
    assert calls.count == 1


async def test_a_cron_job_runs_at_its_time_on_the_clock(harness: Harness):
    """A cron job for 09:00 New York time runs when the clock reaches 14:00 UTC, not a second before."""
    harness.clock.now = dt.datetime(2026, 1, 15, 13, 59, tzinfo=UTC).timestamp()
    calls = Calls()
    name = _name("cron")
    runner = harness.runner(Cron(name=name, expression="0 9 * * *", timezone="America/New_York", run=calls))
    runner.start()
    await _next_period(harness.clock, 59.0)
    assert calls.count == 0
    await _next_period(harness.clock, 1.0)
    await _until(runner, lambda: runner.states[name].runs == 1)
    assert calls.count == 1


async def test_a_failing_run_is_counted_recorded_and_the_loop_goes_on(harness: Harness):
    """A run that raises is a failed run (metric, run-log row with the class name only), and the next runs."""
    calls = Calls(results=[RuntimeError("password=hunter2"), 3])
    name = _name("failing")
    runner = harness.runner(Periodic(name=name, every=10.0, jitter=0.0, run=calls))
    runner.start()
    await _next_period(harness.clock, 10.0)
    await _until(runner, lambda: runner.states[name].runs == 1)
    await _next_period(harness.clock, 10.0)
    await _until(runner, lambda: runner.states[name].runs == 2)
    newest, oldest = await harness.run_log.recent(name, 10)
    assert (oldest.outcome, oldest.error, oldest.result) == ("failed", "RuntimeError", None)
    assert (newest.outcome, newest.error, newest.result) == ("ok", None, 3)
    assert _metric("job_runs_total", name, outcome="failed") == 1.0
    assert _metric("job_runs_total", name, outcome="ok") == 1.0
    assert _metric("job_last_success_timestamp_seconds", name) == harness.clock.now


async def test_a_run_past_its_timeout_is_cancelled_and_recorded(harness: Harness):
    """A run longer than its timeout is cancelled, counted and recorded as ``timeout``; the loop goes on."""
    calls = Calls(gate=asyncio.Event())
    name = _name("slow")
    runner = harness.runner(Periodic(name=name, every=10.0, jitter=0.0, timeout=5.0, run=calls))
    runner.start()
    await _next_period(harness.clock, 10.0)
    await calls.started.wait()
    await _next_period(harness.clock, 5.0)  # the run's timer is the one sleeper
    await _until(runner, lambda: runner.states[name].runs == 1)
    [run] = await harness.run_log.recent(name, 10)
    assert run.outcome == "timeout" and calls.cancelled == 1
    assert _metric("job_runs_total", name, outcome="timeout") == 1.0
    await harness.clock.sleeping(1)  # waiting for its next period


async def test_runs_of_one_job_never_overlap(harness: Harness):
    """While a run outlasts many periods no second run starts; the next starts a period after it ends."""
    calls = Calls(gate=asyncio.Event())
    name = _name("overlap")
    runner = harness.runner(Periodic(name=name, every=1.0, jitter=0.0, timeout=100.0, run=calls))
    runner.start()
    await _next_period(harness.clock, 1.0)
    await calls.started.wait()
    for _ in range(20):
        await _next_period(harness.clock, 1.0)
    assert calls.count == 1
    assert calls.gate is not None
    calls.gate.set()
    await _until(runner, lambda: runner.states[name].runs == 1)
    await _next_period(harness.clock, 1.0)
    await _until(runner, lambda: runner.states[name].runs == 2)
    assert calls.most_at_once == 1


async def test_successes_stay_out_of_the_run_log_when_the_job_says_so(harness: Harness):
    """With record_success=False only failures are recorded."""
    calls = Calls(results=[1, ValueError("no"), 2])
    name = _name("quiet")
    runner = harness.runner(Periodic(name=name, every=10.0, jitter=0.0, record_success=False, run=calls))
    runner.start()
    for runs in (1, 2, 3):
        await _next_period(harness.clock, 10.0)
        await _until(runner, _ran(runner, name, runs))
    assert [run.outcome for run in await harness.run_log.recent(name, 10)] == ["failed"]


async def test_a_run_log_that_cannot_be_written_fails_neither_the_job_nor_the_loop(harness: Harness, tmp_path: Path):
    """Runs go on (and count as ok) when the run log's table is missing."""
    unmigrated = Database.from_settings(Settings(_env_file=None, data_dir=tmp_path / "empty"))
    (tmp_path / "empty").mkdir()
    calls = Calls()
    name = _name("nolog")
    runner = harness.runner(Periodic(name=name, every=10.0, jitter=0.0, run=calls), run_log=RunLog(unmigrated))
    try:
        runner.start()
        for runs in (1, 2):
            await _next_period(harness.clock, 10.0)
            await _until(runner, _ran(runner, name, runs))
        assert runner.states[name].last_outcome == "ok"
        assert _metric("job_runs_total", name, outcome="ok") == 2.0
    finally:
        await unmigrated.close()


# -- drain ------------------------------------------------------------------------------------------------


async def test_drain_stops_jobs_waiting_for_their_time_at_once(harness: Harness):
    """Draining ends idle job loops without a run, and time passing afterwards runs nothing."""
    calls = Calls()
    runner = harness.runner(Periodic(name=_name("idle"), every=10.0, run=calls))
    runner.start()
    await harness.clock.sleeping(1)
    async with asyncio.timeout(2):
        await harness.lifecycles[0].drain()
    harness.clock.advance(1000.0)
    assert calls.count == 0 and harness.clock.sleepers == 0


async def test_drain_lets_a_run_in_progress_finish(harness: Harness):
    """A run under way when draining starts finishes (recorded ``ok``), and no other run starts."""
    calls = Calls(gate=asyncio.Event(), results=[5])
    name = _name("finishing")
    runner = harness.runner(Periodic(name=name, every=10.0, jitter=0.0, run=calls))
    runner.start()
    await _next_period(harness.clock, 10.0)
    await calls.started.wait()
    drain = asyncio.create_task(harness.lifecycles[0].drain())
    await _until(runner, lambda: harness.lifecycles[0].draining)
    assert calls.gate is not None
    calls.gate.set()
    await drain
    [run] = await harness.run_log.recent(name, 10)
    assert (run.outcome, run.result, calls.count) == ("ok", 5, 1)


async def test_drain_cancels_a_run_that_outlasts_the_grace_period(harness: Harness):
    """A run still going when the grace period ends is cancelled and recorded as ``cancelled``."""
    calls = Calls(gate=asyncio.Event())
    name = _name("stuck")
    runner = harness.runner(Periodic(name=name, every=10.0, jitter=0.0, timeout=3600.0, run=calls), grace=0.2)
    runner.start()
    await _next_period(harness.clock, 10.0)
    await calls.started.wait()
    async with asyncio.timeout(5):
        await harness.lifecycles[0].drain()
    [run] = await harness.run_log.recent(name, 10)
    assert run.outcome == "cancelled" and calls.cancelled == 1
    assert _metric("job_runs_total", name, outcome="cancelled") == 1.0


# -- once per cluster -------------------------------------------------------------------------------------


def _cluster_job(name: str, calls: Calls) -> Periodic:
    return Periodic(name=name, every=10.0, jitter=0.0, once_per_cluster=True, run=calls)


async def test_a_cluster_job_runs_on_one_worker_each_period(harness: Harness):
    """Two workers sharing the leases: each period exactly one runs the job, and it is the same one."""
    name = _name("cluster")
    calls = [Calls(), Calls()]
    runners = [harness.runner(_cluster_job(name, c), holder=f"w{i}") for i, c in enumerate(calls)]
    for runner in runners:
        runner.start()
    for period in (1, 2, 3):
        # each worker sleeps for its job and keeps a lease keeper: four sleepers once both are idle
        await _next_period(harness.clock, 10.0, sleepers=4)
        for runner in runners:
            await _until(runner, _ran_or_skipped(runner, name, period))
    assert sorted(c.count for c in calls) == [0, 3]


async def test_a_drained_holder_hands_the_job_over(harness: Harness):
    """When the worker holding a cluster job drains, it releases the lease and another runs the next period."""
    name = _name("handover")
    first, second = Calls(), Calls()
    one = harness.runner(_cluster_job(name, first), holder="w1")
    one.start()
    await _next_period(harness.clock, 10.0, sleepers=2)
    await _until(one, lambda: one.states[name].runs == 1)
    await harness.lifecycles[0].drain()
    two = harness.runner(_cluster_job(name, second), holder="w2")
    two.start()
    await _next_period(harness.clock, 10.0, sleepers=2)
    await _until(two, lambda: two.states[name].runs == 1)
    assert (first.count, second.count) == (1, 1)


class Partitioned:
    """Leases a worker can be cut off from (as a crashed or partitioned worker is, seen from the store)."""

    def __init__(self, leases: Leases) -> None:
        self.leases = leases
        self.cut = False

    async def acquire(self, name: str, holder: str, ttl: float) -> bool:
        if self.cut:
            raise ConnectionError("partitioned")
        return await self.leases.acquire(name, holder, ttl)

    async def release(self, name: str, holder: str) -> bool:
        return await self.leases.release(name, holder)


async def test_another_worker_takes_over_once_a_silent_holders_lease_expires(harness: Harness):
    """A holder that stops renewing keeps the job only until its lease's TTL runs out; then another runs it."""
    name = _name("takeover")
    first, second = Calls(), Calls()
    cut_off = Partitioned(harness.leases)
    one = harness.runner(_cluster_job(name, first), holder="w1", leases=cut_off)
    two = harness.runner(_cluster_job(name, second), holder="w2")
    one.start()
    two.start()
    await _next_period(harness.clock, 10.0, sleepers=4)
    for runner in (one, two):
        await _until(runner, _ran_or_skipped(runner, name, 1))
    assert (first.count, second.count) == (1, 0)
    cut_off.cut = True
    await _next_period(harness.clock, 10.0, sleepers=4)  # 10 s after: the lease (30 s) still runs
    await _until(two, lambda: two.states[name].skipped == 2)
    for _ in range(2):  # 30 s after the last renewal the lease has expired
        await _next_period(harness.clock, 10.0, sleepers=4)
    await _until(two, lambda: two.states[name].runs == 1)
    assert (first.count, second.count) == (1, 1)


# -- the run log ------------------------------------------------------------------------------------------


def _run(job: str, at: float, outcome: Any = "ok") -> Run:
    return Run(job=job, worker="w", started_at=at, finished_at=at + 1, duration_ms=1000, outcome=outcome)


async def test_pruning_keeps_the_newest_runs_per_job_within_the_retention(db: Database):
    """prune drops runs older than the retention and all but the newest N of each job."""
    clock = FakeClock(start=100 * 86_400.0)
    log = RunLog(db, retention_seconds=30 * 86_400, keep_per_job=3, clock=clock)
    for n in range(5):
        await log.record(_run("t.busy", clock.now - 60 * (5 - n)))
    await log.record(_run("t.rare", clock.now - 31 * 86_400))
    await log.record(_run("t.rare", clock.now - 29 * 86_400, "failed"))
    assert await log.prune() == 3
    assert [r.started_at for r in await log.recent("t.busy", 10)] == [clock.now - 60 * n for n in (1, 2, 3)]
    assert [r.outcome for r in await log.recent("t.rare", 10)] == ["failed"]


async def test_summaries_give_the_latest_run_success_and_failure(db: Database):
    """A job's summary holds its newest run, newest success and newest failure; an unknown job has none."""
    log = RunLog(db)
    for at, outcome in ((1.0, "ok"), (2.0, "timeout"), (3.0, "ok"), (4.0, "failed")):
        await log.record(_run("t.mixed", at, outcome))
    summaries = await log.summaries(["t.mixed", "t.never"])
    mixed = summaries["t.mixed"]
    assert mixed.last_run is not None and mixed.last_run.started_at == 4.0
    assert mixed.last_success is not None and mixed.last_success.started_at == 3.0
    assert mixed.last_failure is not None and mixed.last_failure.outcome == "failed"
    assert summaries["t.never"].last_run is None
