"""What a module declares about a background job; the core's one loop runs it (see ``runner.py``).

    Periodic("identity.flush-touches", every=30.0, run=service.flush_touches)
    Periodic("secrets.purge", every=60.0, jitter=0.2, run=service.purge, once_per_cluster=True)
    Cron("billing.reconcile", "17 3 * * *", run=billing.reconcile, once_per_cluster=True)

``run`` takes no arguments and may return anything (a count is logged). A run that raises is a failed run:
logged, counted, recorded in the run log, and tried again at the next due time; it never stops the loop.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

JobFn = Callable[[], Awaitable[object]]


@dataclass(frozen=True, kw_only=True)
class Job:
    """A job. ``name`` is unique in the app (``<module>.<job>``), is its metric label and its lease key.

    * ``jitter`` spreads runs of workers started together: each wait is ``every`` times a random factor in
      ``[1 - jitter, 1 + jitter]`` (periodic jobs), or a random delay of up to ``jitter`` times the gap to the
      next firing (cron jobs).
    * ``once_per_cluster``: one instance of the whole deployment runs it at a time, the holder of its lease
      (in Redis when configured, else in the SQL database, so it holds across workers and machines).
    * ``timeout``: a run longer than this is cancelled and recorded as failed (None: ``every``, or one hour).
    * ``record_success``: successful runs go to the run log (failures always do); off for jobs that run
      every few seconds, whose history would drown the rest.
    """

    name: str
    run: JobFn
    jitter: float = 0.1
    once_per_cluster: bool = False
    timeout: float | None = None
    record_success: bool = True
    run_at_start: bool = False
    """Run once as soon as the worker is ready, then on schedule."""


@dataclass(frozen=True, kw_only=True)
class Periodic(Job):
    every: float


@dataclass(frozen=True, kw_only=True)
class Cron(Job):
    expression: str
    """Five fields (minute hour day month weekday), evaluated in ``timezone``."""
    timezone: str = "UTC"
