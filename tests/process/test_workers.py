"""Prometheus metrics with several workers: summed across them, and kept when a worker dies.

``bastion serve --workers 2`` switches prometheus_client to multiprocess mode with
``PROMETHEUS_MULTIPROC_DIR`` under ``DATA_DIR/metrics``; a scrape, answered by either worker, merges
every worker's files and folds those of dead workers into ``*_archive.db``. Both servers replace a
worker that dies (granian with ``respawn_failed_workers``, uvicorn's supervisor on its own).
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from prometheus_client.mmap_dict import MmapedDict, mmap_key

from bastion.core.metrics import archive_dead_workers
from tests.process.conftest import free_port, serve_command, server_env

SERIES = 'bastion_http_requests_total{method="GET",route="/t/slow",status_class="2xx"}'
FIRST_BATCH = 200  # at least; more, in chunks, until each worker has served some (see the fixture)
CHUNK = 25
MAX_FIRST = 2000
SECOND_BATCH = 50
DEAD_PID = 2**31 - 7  # far above any pid_max: no such process
# the key the live counter writes (prometheus_client drops "_total" from the metric's own name)
METRIC_KEY = mmap_key(
    "bastion_http_requests",
    "bastion_http_requests_total",
    ["method", "route", "status_class"],
    ["GET", "/t/slow", "2xx"],
    "HTTP requests served",
)


def _count(text: str) -> float:
    match = re.search(re.escape(SERIES) + r" ([0-9.e+]+)", text)
    return float(match.group(1)) if match else 0.0


async def _send(base_url: str, n: int) -> list[int]:
    """n requests to /t/slow?seconds=0, each on a new connection (spread over the workers)."""
    limits = httpx.Limits(max_connections=8, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30) as client:
        responses = await asyncio.gather(*(client.get("/t/slow", params={"seconds": 0}) for _ in range(n)))
    return [r.status_code for r in responses]


def _scrape(base_url: str) -> tuple[float, str]:
    with httpx.Client(base_url=base_url, timeout=10, headers={"connection": "close"}) as client:
        response = client.get("/metrics")
        assert response.status_code == 200, response.text
        return _count(response.text), response.text


def _scrape_until(base_url: str, expected: float, timeout: float = 10.0) -> list[float]:
    """Scrape until the series reaches ``expected`` (the counter moves just after each response is sent)."""
    seen: list[float] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen.append(_scrape(base_url)[0])
        if seen[-1] >= expected:
            break
        time.sleep(0.05)
    return seen


def _workers(main_pid: int) -> set[int]:
    """The live worker processes (uvicorn's spawn context also starts a resource tracker: not a worker)."""
    found = set()
    for child in psutil.Process(main_pid).children():
        try:
            if child.status() == psutil.STATUS_ZOMBIE or any("resource_tracker" in p for p in child.cmdline()):
                continue
        except psutil.Error:  # gone, or a zombie, between listing and looking
            continue
        found.add(child.pid)
    return found


@dataclass
class Workers:
    statuses: list[int] = field(default_factory=list)
    first_total: int = 0
    workers_seen: set[int] = field(default_factory=set)
    first_scrapes: list[float] = field(default_factory=list)
    dead_pid: int = 0
    dead_worker_count: float = 0.0
    dead_files_before: list[str] = field(default_factory=list)
    dead_files_after: list[str] = field(default_factory=list)
    scrapes_after_kill: list[float] = field(default_factory=list)
    final_scrapes: list[float] = field(default_factory=list)
    metrics_dir: Path | None = None


@pytest.fixture(scope="module", params=["granian", "uvicorn"])
def workers(request: pytest.FixtureRequest, start_server: Any, module_tmp: Path) -> Workers:
    """Two workers: send a batch, scrape, SIGKILL one worker, scrape, send more, scrape."""
    seen = Workers()
    port = free_port()
    data_dir = module_tmp / f"data-workers-{request.param}"
    env = server_env(data_dir, rate_limits__general="100000/minute")
    server = start_server(
        serve_command("--server", request.param, "--workers", "2", "--port", str(port)),
        env=env,
        port=port,
        name=f"workers-{request.param}",
    )
    server.wait_ready()
    seen.metrics_dir = data_dir.resolve() / "metrics"
    deadline = time.monotonic() + 60
    while len(_workers(server.pid)) < 2:  # both workers up, not just the first to answer
        assert time.monotonic() < deadline, server.output()[-3000:]
        time.sleep(0.1)

    # The kernel hands new connections to whichever worker accepts first, and one worker can take a whole
    # batch (seen with uvicorn's workers): send until each worker has served part of it.
    pids = _workers(server.pid)
    while seen.first_total < FIRST_BATCH or not all(_served(seen.metrics_dir, pid) for pid in pids):
        assert seen.first_total < MAX_FIRST, f"one worker served all of {seen.first_total} requests"
        seen.statuses += asyncio.run(_send(server.base_url, CHUNK))
        seen.first_total += CHUNK
    seen.first_scrapes = _scrape_until(server.base_url, seen.first_total)
    seen.first_scrapes += [_scrape(server.base_url)[0] for _ in range(8)]
    seen.workers_seen = {
        int(pid) for pid in re.findall(r'bastion_process_rss_bytes\{pid="(\d+)"\}', _scrape(server.base_url)[1])
    }

    before = _workers(server.pid)
    seen.dead_pid = min(before)
    seen.dead_files_before = sorted(p.name for p in seen.metrics_dir.glob(f"*_{seen.dead_pid}.db"))
    seen.dead_worker_count = _served(seen.metrics_dir, seen.dead_pid)
    os.kill(seen.dead_pid, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while True:  # scrape (any live worker answers) until the replacement worker is up
        seen.scrapes_after_kill.append(_scrape(server.base_url)[0])
        now = _workers(server.pid)
        if len(now) == 2 and seen.dead_pid not in now:
            break
        assert time.monotonic() < deadline, server.output()[-3000:]
        time.sleep(0.1)
    server.wait_ready()
    seen.scrapes_after_kill += [_scrape(server.base_url)[0] for _ in range(8)]
    seen.dead_files_after = sorted(p.name for p in seen.metrics_dir.glob(f"*_{seen.dead_pid}.db"))

    seen.statuses += asyncio.run(_send(server.base_url, SECOND_BATCH))
    seen.final_scrapes = _scrape_until(server.base_url, seen.first_total + SECOND_BATCH)
    seen.final_scrapes += [_scrape(server.base_url)[0] for _ in range(8)]
    print(
        f"\nworker {seen.dead_pid} had served {seen.dead_worker_count:.0f} of {seen.first_total}; scrapes after "
        f"the kill: {seen.scrapes_after_kill}"
    )
    return seen


@pytest.mark.slow
def test_every_request_is_served(workers: Workers) -> None:
    """All requests sent to the two workers answer 200 (none rate-limited or dropped)."""
    assert workers.statuses == [200] * (workers.first_total + SECOND_BATCH)


@pytest.mark.slow
def test_both_workers_report_into_one_exposition(workers: Workers) -> None:
    """A scrape shows the per-worker gauge of two worker pids: the files of both are merged."""
    assert len(workers.workers_seen) == 2, workers.workers_seen


@pytest.mark.slow
def test_request_counter_is_summed_across_workers(workers: Workers) -> None:
    """Every scrape, whichever worker answers it, counts all the requests served by both workers."""
    assert workers.first_scrapes[-9:] == [workers.first_total] * 9, workers.first_scrapes


@pytest.mark.slow
def test_counter_never_goes_backwards_when_a_worker_dies(workers: Workers) -> None:
    """After one worker is SIGKILLed and replaced, the total for the route stays where it was."""
    assert 0 < workers.dead_worker_count < workers.first_total, "the killed worker must have served part of the batch"
    assert workers.scrapes_after_kill, "no scrape after the kill"
    assert workers.scrapes_after_kill == [workers.first_total] * len(workers.scrapes_after_kill), (
        workers.scrapes_after_kill
    )


@pytest.mark.slow
def test_dead_worker_files_are_removed_after_a_scrape(workers: Workers) -> None:
    """The killed worker's *_<pid>.db files are gone from the metrics directory after a scrape."""
    assert workers.dead_files_before, "the killed worker had written no metric files"
    assert workers.dead_files_after == []
    assert workers.metrics_dir is not None and (workers.metrics_dir / "counter_archive.db").exists()


@pytest.mark.slow
def test_counter_keeps_summing_after_a_worker_is_replaced(workers: Workers) -> None:
    """Requests served after the replacement add to the archived total."""
    assert workers.final_scrapes[-9:] == [workers.first_total + SECOND_BATCH] * 9, workers.final_scrapes


def _write(path: Path, key: str, value: float) -> None:
    values = MmapedDict(str(path))  # type: ignore[no-untyped-call]  # prometheus_client is untyped here
    try:
        values.write_value(key, value, 0.0)  # type: ignore[no-untyped-call]
    finally:
        values.close()  # type: ignore[no-untyped-call]


def _values(path: Path) -> dict[str, float]:
    return {key: value for key, value, _, _ in MmapedDict.read_all_values_from_file(str(path))}  # type: ignore[no-untyped-call]


def _served(metrics_dir: Path, pid: int) -> float:
    """How many requests to the route the worker ``pid`` has counted in its own counter file."""
    path = metrics_dir / f"counter_{pid}.db"
    return _values(path).get(METRIC_KEY, 0.0) if path.exists() else 0.0


def test_archive_folds_a_dead_workers_counter_into_the_sum(tmp_path: Path) -> None:
    """A dead worker's counter value is added to the value already archived."""
    _write(tmp_path / "counter_archive.db", METRIC_KEY, 7.0)
    _write(tmp_path / f"counter_{DEAD_PID}.db", METRIC_KEY, 5.0)
    archive_dead_workers(str(tmp_path))
    assert _values(tmp_path / "counter_archive.db") == {METRIC_KEY: 12.0}


def test_archive_removes_the_dead_workers_file(tmp_path: Path) -> None:
    """The dead worker's file is deleted once folded, and counted in the return value."""
    _write(tmp_path / f"counter_{DEAD_PID}.db", METRIC_KEY, 5.0)
    assert archive_dead_workers(str(tmp_path)) == 1
    assert not (tmp_path / f"counter_{DEAD_PID}.db").exists()


def test_archive_leaves_live_workers_alone(tmp_path: Path) -> None:
    """Files of a process that is alive are neither folded nor removed."""
    _write(tmp_path / f"counter_{os.getpid()}.db", METRIC_KEY, 3.0)
    assert archive_dead_workers(str(tmp_path)) == 0
    assert _values(tmp_path / f"counter_{os.getpid()}.db") == {METRIC_KEY: 3.0}
    assert not (tmp_path / "counter_archive.db").exists()


def test_archive_drops_a_dead_workers_live_gauge(tmp_path: Path) -> None:
    """A dead worker's livesum gauge is removed, not archived (it no longer describes anything)."""
    key = mmap_key("bastion_http_requests_in_flight", "bastion_http_requests_in_flight", [], [], "in flight")
    _write(tmp_path / f"gauge_livesum_{DEAD_PID}.db", key, 4.0)
    archive_dead_workers(str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == []
