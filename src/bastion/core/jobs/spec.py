"""What a module declares about a background job; the core's one loop runs it (see ``runner.py``).

    Periodic(name="identity.flush-touches", every=30.0, run=service.flush_touches, record_success=False)
    Periodic(name="secrets.purge", every=60.0, jitter=0.2, run=service.purge, once_per_cluster=True)
    Cron(name="billing.reconcile", expression="17 3 * * *", timezone="Europe/Paris", run=billing.reconcile,
         once_per_cluster=True)

``run`` takes no arguments and may return anything (an ``int`` is logged and recorded as the run's count). A run
that raises is a failed run: logged, counted, recorded in the run log, and tried again at the next due time; it
never stops the loop. A declaration that cannot work (a bad name, cron expression or time zone) raises
``ValueError`` where it is written, so a typo fails the first test run rather than the first night.
"""

from __future__ import annotations

import datetime as dt
import random
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

JobFn = Callable[[], Awaitable[object]]

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,99}$")
"""Lower-case, dotted (``<module>.<job>``), at most 100 characters: it is a metric label, a lease key and a
column of the run log."""
DEFAULT_CRON_TIMEOUT = 3600.0


@dataclass(frozen=True, kw_only=True)
class Job:
    """A job. ``name`` is unique in the app (``<module>.<job>``), is its metric label and its lease key.

    * ``jitter`` spreads runs of workers started together: each wait is ``every`` times a random factor in
      ``[1 - jitter, 1 + jitter]`` (periodic jobs), or the firing time plus a random delay of up to ``jitter``
      times the gap between that firing and the one after it (cron jobs, where it is 0 unless asked for: a job
      declared for 03:17 runs at 03:17).
    * ``once_per_cluster``: one instance of the whole deployment runs it, the holder of its lease (in Redis
      when configured, else in the SQL database, so it holds across workers and machines). The holder keeps
      the lease while it lives; another instance takes over when it drains or after the lease's TTL if it dies.
    * ``timeout``: a run longer than this is cancelled and recorded with the outcome ``timeout`` (None:
      ``every`` for a periodic job, one hour for a cron job).
    * ``record_success``: successful runs go to the run log (failures always do); off for jobs that run
      every few seconds, whose history would drown the rest (their successes are then logged at debug level).
    """

    name: str
    run: JobFn
    jitter: float = 0.1
    once_per_cluster: bool = False
    timeout: float | None = None
    record_success: bool = True
    run_at_start: bool = False
    """Run once as soon as the worker is ready, then on schedule."""

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"job name {self.name!r}: use lower-case letters, digits and . _ - (at most 100)")
        if not 0.0 <= self.jitter < 1.0:
            raise ValueError(f"job {self.name!r}: jitter must be in [0, 1), not {self.jitter}")
        if self.timeout is not None and self.timeout <= 0:
            raise ValueError(f"job {self.name!r}: timeout must be positive")

    @property
    def timeout_seconds(self) -> float:
        """The longest a run may take before it is cancelled."""
        return self.timeout if self.timeout is not None else DEFAULT_CRON_TIMEOUT

    @property
    def schedule(self) -> str:
        """The schedule in words, for the admin view and the log."""
        raise NotImplementedError

    def delay(self, now: float, rng: random.Random) -> float:
        """Seconds from ``now`` (Unix time) until the next run, jitter included."""
        raise NotImplementedError


@dataclass(frozen=True, kw_only=True)
class Periodic(Job):
    """A job run every ``every`` seconds (counted from the end of the previous run, so runs never pile up)."""

    every: float

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.every <= 0:
            raise ValueError(f"job {self.name!r}: every must be positive")

    @property
    def timeout_seconds(self) -> float:
        return self.timeout if self.timeout is not None else self.every

    @property
    def schedule(self) -> str:
        return f"every {self.every:g}s"

    def delay(self, now: float, rng: random.Random) -> float:
        return self.every * rng.uniform(1.0 - self.jitter, 1.0 + self.jitter)


@dataclass(frozen=True, kw_only=True)
class Cron(Job):
    """A job run at the times a cron expression names, in ``timezone`` (an IANA name).

    Cron's own rules apply across daylight-saving changes (cronsim follows Debian cron): a firing in the hour
    that is skipped in spring happens when the clocks have moved on, and one in the hour repeated in autumn
    happens once. A run still going at its next firing makes the loop skip that firing, not queue it.
    """

    expression: str
    """Five fields (minute hour day month weekday), evaluated in ``timezone``."""
    timezone: str = "UTC"
    jitter: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.expression.split()) != 5:
            raise ValueError(f"job {self.name!r}: a cron expression has five fields, not {self.expression!r}")
        try:
            zone = ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"job {self.name!r}: unknown time zone {self.timezone!r}") from exc
        try:
            self.next_fire(dt.datetime.now(zone))
        except CronSimError as exc:
            raise ValueError(f"job {self.name!r}: cron expression {self.expression!r}: {exc}") from exc

    @property
    def schedule(self) -> str:
        return f"cron {self.expression} ({self.timezone})"

    def next_fire(self, after: dt.datetime) -> dt.datetime:
        """The first firing strictly after ``after`` (an aware datetime), in the job's time zone."""
        if after.tzinfo is None:
            raise ValueError("next_fire needs an aware datetime")
        # ZoneInfo caches its instances, so asking again per call costs a dictionary lookup.
        found = next(CronSim(self.expression, after.astimezone(ZoneInfo(self.timezone))), None)
        if found is None:  # cronsim looks 50 years ahead
            raise CronSimError(f"{self.expression!r} never fires")
        return found

    def delay(self, now: float, rng: random.Random) -> float:
        fire = self.next_fire(dt.datetime.fromtimestamp(now, dt.UTC))
        wait = fire.timestamp() - now
        if self.jitter:
            wait += rng.uniform(0.0, self.jitter) * (self.next_fire(fire).timestamp() - fire.timestamp())
        return max(0.0, wait)
