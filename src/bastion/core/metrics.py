"""Prometheus instruments and the ``/metrics`` exposition, correct with one worker or many.

With several workers ``bastion serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at an empty directory
before the workers start; each worker then writes its values to memory-mapped files there, and a
scrape merges them. Files of workers that have died are folded into one archive file per metric
type (so counters never go backwards) and removed, which keeps scrapes fast across restarts
(prometheus/client_python#204, #367 leave that to the operator).

Modules create their own instruments through :func:`counter`, :func:`histogram` and :func:`gauge`,
which return the existing instrument when called twice with the same name (two app instances in one
process share them).
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import os
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import psutil
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)
from prometheus_client.mmap_dict import MmapedDict

from bastion.core.observability.reports import RouteWindow

disable_created_metrics()  # the *_created series double the exposition and nobody graphs them
PREFIX = "bastion_"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_lock = threading.Lock()
_instruments: dict[str, Any] = {}


def multiproc_dir() -> str | None:
    # prometheus_client itself decides its storage from this variable at import time; we read it to
    # know which exposition to use (the one place outside settings.py that looks at the environment,
    # because the library defines it).
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def _get_or_create(kind: type[Any], name: str, doc: str, labels: Sequence[str], **kw: Any) -> Any:
    full = PREFIX + name
    with _lock:
        found = _instruments.get(full)
        if found is None:
            found = kind(full, doc, labelnames=tuple(labels), **kw)
            _instruments[full] = found
        return found


def counter(name: str, doc: str, labels: Sequence[str] = ()) -> Counter:
    result: Counter = _get_or_create(Counter, name, doc, labels)
    return result


def histogram(name: str, doc: str, labels: Sequence[str] = (), buckets: Sequence[float] = LATENCY_BUCKETS) -> Histogram:
    result: Histogram = _get_or_create(Histogram, name, doc, labels, buckets=tuple(buckets))
    return result


def gauge(name: str, doc: str, labels: Sequence[str] = (), mode: str = "livesum") -> Gauge:
    result: Gauge = _get_or_create(Gauge, name, doc, labels, multiprocess_mode=mode)
    return result


class HttpMetrics:
    """RED metrics for the edge, with labelled children cached so a request costs two dict lookups."""

    def __init__(self, window: RouteWindow | None = None) -> None:
        self.window = window
        """Where each request's duration also goes, for the slow-routes report (``observability/reports.py``)."""
        self.requests = counter("http_requests_total", "HTTP requests served", ("method", "route", "status_class"))
        self.latency = histogram(
            "http_request_duration_seconds", "Time to serve an HTTP request", ("method", "route", "status_class")
        )
        self._children: dict[tuple[str, str, str], tuple[Any, Any, Any]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float, trace_id: str | None = None) -> None:
        """Count and time one request; ``trace_id`` (a sampled trace) becomes the observation's exemplar, shown in
        the OpenMetrics exposition (single-process only: prometheus_client keeps no exemplars across workers)."""
        key = (method, route, _STATUS_CLASS[status // 100] if 0 < status < 600 else "other")
        children = self._children.get(key)
        if children is None:
            if len(self._children) > 5000:  # unbounded routes would be a bug; cap the damage
                key = (method, "<other>", key[2])
            reservoir = self.window.reservoir(method, key[1]) if self.window is not None else None
            children = (self.requests.labels(*key), self.latency.labels(*key), reservoir)
            self._children[key] = children
        children[0].inc()
        if trace_id is None:
            children[1].observe(seconds)
        else:
            children[1].observe(seconds, {"trace_id": trace_id})
        if children[2] is not None:
            children[2].add(seconds)


_STATUS_CLASS = {1: "1xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}

ratelimit_decisions = counter("ratelimit_decisions_total", "Admission decisions", ("tier", "decision"))
bans_total = counter("ratelimit_bans_total", "Clients banned for abuse", ("tier",))
ratelimit_table_full = counter(
    "ratelimit_table_full_total",
    "New clients refused by the in-process limiter because its table was full of live states",
    ("tier",),
)
breaker_state = gauge(
    "circuit_breaker_state", "Circuit state: 0 closed, 1 half-open, 2 open", ("breaker",), mode="livemax"
)
breaker_transitions = counter("circuit_breaker_transitions_total", "Circuit state changes", ("breaker", "to"))
in_flight = gauge("http_requests_in_flight", "HTTP requests being served (sampled every second)")

# Background jobs (core/jobs/runner.py), labelled by job name only: a declared, bounded set.
JOB_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0)
job_runs = counter(
    "job_runs_total", "Background job runs by outcome: ok, failed, timeout, cancelled", ("job", "outcome")
)
job_duration = histogram("job_run_duration_seconds", "Time a background job run took", ("job",), buckets=JOB_BUCKETS)
job_last_success = gauge(
    "job_last_success_timestamp_seconds", "When the job last succeeded (Unix time)", ("job",), mode="max"
)
job_lease_held = gauge("job_lease_held", "Workers holding the job's cluster lease (0 or 1)", ("job",))
process_rss = gauge("process_rss_bytes", "Resident memory of each worker", mode="liveall")


def update_process_metrics() -> int:
    rss = int(psutil.Process().memory_info().rss)
    process_rss.set(rss)
    return rss


def exposition(openmetrics: bool = False) -> tuple[bytes, str]:
    """The current metrics in the Prometheus text format, merged over workers when there are several; in the
    OpenMetrics format when asked (``Accept: application/openmetrics-text``), which carries exemplars."""
    update_process_metrics()
    directory = multiproc_dir()
    if directory is None:
        if openmetrics:
            from prometheus_client.openmetrics import exposition as om

            return om.generate_latest(REGISTRY), om.CONTENT_TYPE_LATEST
        return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
    with _dir_lock(directory):
        archive_dead_workers(directory)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=directory)
        return generate_latest(registry), CONTENT_TYPE_LATEST


@contextlib.contextmanager
def _dir_lock(directory: str) -> Iterator[None]:
    with open(os.path.join(directory, ".lock"), "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def archive_dead_workers(directory: str) -> int:
    """Fold the files of dead workers into ``<type>_archive.db`` and delete them; return how many.

    Counters and histograms are summed into the archive (a restart must not make a counter go
    backwards); ``live*`` gauges of a dead worker are simply dropped, as prometheus_client's own
    ``mark_process_dead`` does; other gauges keep their last value in the archive only for ``all``
    mode, which is keyed by pid and therefore dropped too.
    """
    removed = 0
    for path in glob.glob(os.path.join(directory, "*.db")):
        base = os.path.basename(path)[:-3]
        kind, _, pid_text = base.rpartition("_")
        if not pid_text.isdigit() or _pid_alive(int(pid_text)):
            continue
        if kind in ("counter", "histogram"):
            archive = MmapedDict(os.path.join(directory, f"{kind}_archive.db"))
            try:
                for key, value, timestamp in _read(path):
                    current, _ = archive.read_value(key)
                    archive.write_value(key, current + value, timestamp)
            finally:
                archive.close()
        os.remove(path)
        removed += 1
    return removed


def _read(path: str) -> list[tuple[str, float, float]]:
    return [(key, value, timestamp) for key, value, timestamp, _ in MmapedDict.read_all_values_from_file(path)]
