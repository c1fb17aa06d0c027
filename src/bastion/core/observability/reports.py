"""The periodic reports: the slowest route templates and the worker's memory trend, once per window.

    reports = Reports(ReportSettings(every_seconds=60), memory_warn_bytes=512 * 2**20)
    reports.routes.observe("GET", "/api/things/{id}", 0.012)   # the edge's metrics call it per request
    report = reports.report()                                   # a declared job calls it every window

Each window ends in two log lines: ``slow routes`` (the ``top_routes`` templates with the highest p95, each with
count, p50, p95 and p99 in milliseconds) and ``memory trend`` (RSS now, its slope over the last windows in MiB per
hour; a warning when RSS is above ``memory_warn_mb``, the slope above ``growth_warn_mb_per_hour``, or RSS grew in
every one of the last ``steady_windows`` windows). ``/health/detailed`` shows the last report.

Memory stays bounded however long the worker lives: per route, a count and a uniform sample of at most
``reservoir_size`` durations (Vitter's algorithm R: the k-th observation replaces a random slot with probability
size/k), at most ``max_routes`` routes per window (the rest are counted under ``<other>``), and the last
``memory_windows`` RSS readings. Percentiles of a sample of 256 are within a few percent of the true ones at p95,
and p99 of a busy route is an estimate; the Prometheus histogram stays the exact record.
"""

from __future__ import annotations

import itertools
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from bastion.core.logging import get_logger

log = get_logger("bastion.reports")
MiB = 1_048_576
OTHER = "<other>"


class ReportSettings(BaseModel):
    """``BASTION_REPORTS__EVERY_SECONDS=60`` and the rest: how often, how many routes, when memory warns."""

    model_config = ConfigDict(frozen=True)

    enabled: bool = True
    every_seconds: float = Field(60.0, gt=0)
    top_routes: int = Field(5, ge=1, le=100)
    reservoir_size: int = Field(256, ge=16, le=10_000)
    max_routes: int = Field(500, ge=1)
    memory_windows: int = Field(10, ge=3, le=1000)
    """RSS readings kept (one per window) for the slope."""
    steady_windows: int = Field(5, ge=2)
    """A warning when RSS grew in each of this many windows in a row (by at least ``min_growth_mb`` in all)."""
    min_growth_mb: float = Field(1.0, ge=0)
    growth_warn_mb_per_hour: float = Field(100.0, gt=0)


class _Reservoir:
    __slots__ = ("count", "samples", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self.count = 0
        self.samples: list[float] = []

    def add(self, value: float) -> None:
        self.count += 1
        if len(self.samples) < self.size:
            self.samples.append(value)
            return
        slot = int(random.random() * self.count)  # uniform in [0, count): a sample, not a secret
        if slot < self.size:
            self.samples[slot] = value


class RouteWindow:
    """Latency per (method, route template) over the current window, in bounded memory."""

    def __init__(self, *, reservoir_size: int = 256, max_routes: int = 500) -> None:
        self.reservoir_size = reservoir_size
        self.max_routes = max_routes
        self._routes: dict[tuple[str, str], _Reservoir] = {}

    def reservoir(self, method: str, route: str) -> _Reservoir:
        """The route's reservoir, kept for the life of the window object (it is emptied, not replaced, when a window
        ends), so that the edge's metrics can hold on to it and a request costs one ``add``."""
        key = (method, route)
        found = self._routes.get(key)
        if found is None:
            if len(self._routes) >= self.max_routes:
                key = (method, OTHER)
                found = self._routes.get(key)
            if found is None:
                found = self._routes[key] = _Reservoir(self.reservoir_size)
        return found

    def observe(self, method: str, route: str, seconds: float) -> None:
        self.reservoir(method, route).add(seconds)

    def rotate(self) -> dict[tuple[str, str], _Reservoir]:
        """End the window: the routes seen in it with their samples; every reservoir starts empty again."""
        finished = {}
        for key, reservoir in self._routes.items():
            if reservoir.count:
                snapshot = finished[key] = _Reservoir(reservoir.size)
                snapshot.count, snapshot.samples = reservoir.count, reservoir.samples
                reservoir.count, reservoir.samples = 0, []
        return finished

    def peek(self) -> dict[tuple[str, str], _Reservoir]:
        """The window so far (routes seen in it)."""
        return {key: reservoir for key, reservoir in self._routes.items() if reservoir.count}


@dataclass(frozen=True, slots=True)
class RouteStats:
    route: str
    count: int
    p50_ms: float
    p95_ms: float
    p99_ms: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "route": self.route,
            "count": self.count,
            "p50_ms": self.p50_ms,
            "p95_ms": self.p95_ms,
            "p99_ms": self.p99_ms,
        }


def slowest(window: dict[tuple[str, str], _Reservoir], top: int) -> list[RouteStats]:
    """The ``top`` routes of a window by p95 (then p99), slowest first."""
    stats = []
    for (method, route), reservoir in window.items():
        ordered = sorted(reservoir.samples)
        if not ordered:
            continue
        stats.append(
            RouteStats(
                f"{method} {route}",
                reservoir.count,
                _percentile(ordered, 0.50),
                _percentile(ordered, 0.95),
                _percentile(ordered, 0.99),
            )
        )
    stats.sort(key=lambda s: (s.p95_ms, s.p99_ms), reverse=True)
    return stats[:top]


def _percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile of a sorted sample, in milliseconds."""
    index = max(0, min(len(ordered) - 1, int(q * len(ordered) + 0.999999) - 1))
    return round(ordered[index] * 1000.0, 3)


@dataclass(slots=True)
class MemoryTrend:
    """RSS readings, one per window, and what they say."""

    keep: int
    readings: deque[tuple[float, int]] = field(default_factory=deque)

    def add(self, at: float, rss: int) -> None:
        self.readings.append((at, rss))
        while len(self.readings) > self.keep:
            self.readings.popleft()

    def slope_mb_per_hour(self) -> float:
        """Least-squares slope of RSS over time, in MiB per hour (0 with fewer than two readings)."""
        if len(self.readings) < 2:
            return 0.0
        n = len(self.readings)
        mean_t = sum(t for t, _ in self.readings) / n
        mean_r = sum(r for _, r in self.readings) / n
        spread = sum((t - mean_t) ** 2 for t, _ in self.readings)
        if spread == 0:
            return 0.0
        slope = sum((t - mean_t) * (r - mean_r) for t, r in self.readings) / spread  # bytes per second
        return round(slope * 3600.0 / MiB, 3)

    def steady_growth(self, windows: int, min_growth_bytes: float) -> bool:
        """RSS grew in each of the last ``windows`` windows, by at least ``min_growth_bytes`` in all."""
        if len(self.readings) < windows + 1:
            return False
        last = list(self.readings)[-(windows + 1) :]
        rising = all(b[1] > a[1] for a, b in itertools.pairwise(last))
        return rising and last[-1][1] - last[0][1] >= min_growth_bytes


@dataclass(frozen=True, slots=True)
class Report:
    window_seconds: float
    routes: list[RouteStats]
    rss_mb: float
    slope_mb_per_hour: float
    windows: int
    warnings: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "window_seconds": self.window_seconds,
            "slow_routes": [r.as_dict() for r in self.routes],
            "memory": {
                "rss_mb": self.rss_mb,
                "slope_mb_per_hour": self.slope_mb_per_hour,
                "windows": self.windows,
                "warnings": self.warnings,
            },
        }


class Reports:
    """The route window the edge feeds, the memory readings, and the report made of them each window."""

    def __init__(
        self,
        settings: ReportSettings,
        *,
        memory_warn_bytes: int,
        rss: Callable[[], int],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.memory_warn_bytes = memory_warn_bytes
        self.routes = RouteWindow(reservoir_size=settings.reservoir_size, max_routes=settings.max_routes)
        self.memory = MemoryTrend(keep=settings.memory_windows)
        self.last: Report | None = None
        self._rss = rss
        self._clock = clock
        self._window_start = clock()

    def report(self) -> Report:
        """End the current window: log its slowest routes and the memory trend, and keep them for the health view."""
        now = self._clock()
        window = self.routes.rotate()
        elapsed, self._window_start = round(now - self._window_start, 3), now
        rss = self._rss()
        self.memory.add(now, rss)
        report = self._build(window, elapsed, rss)
        self.last = report
        log.info("slow routes", window_seconds=elapsed, routes=[r.as_dict() for r in report.routes])
        (log.warning if report.warnings else log.info)(
            "memory trend",
            rss_mb=report.rss_mb,
            slope_mb_per_hour=report.slope_mb_per_hour,
            windows=report.windows,
            warnings=report.warnings,
        )
        return report

    async def run(self) -> int:
        """The job's body: one report; its count is the number of routes it names."""
        return len(self.report().routes)

    def snapshot(self) -> dict[str, Any]:
        """The last report, or the window so far when none has ended yet (for ``/health/detailed``)."""
        if self.last is not None:
            return self.last.as_dict()
        rss = self._rss()
        return self._build(self.routes.peek(), round(self._clock() - self._window_start, 3), rss).as_dict()

    def _build(self, window: dict[tuple[str, str], _Reservoir], elapsed: float, rss: int) -> Report:
        settings = self.settings
        slope = self.memory.slope_mb_per_hour()
        warnings = []
        if rss > self.memory_warn_bytes:
            warnings.append(f"rss above {self.memory_warn_bytes // MiB} MiB")
        if slope > settings.growth_warn_mb_per_hour and len(self.memory.readings) >= 3:
            warnings.append(f"growing faster than {settings.growth_warn_mb_per_hour:g} MiB/h")
        if self.memory.steady_growth(settings.steady_windows, settings.min_growth_mb * MiB):
            warnings.append(f"grew in each of the last {settings.steady_windows} windows")
        return Report(
            window_seconds=elapsed,
            routes=slowest(window, settings.top_routes),
            rss_mb=round(rss / MiB, 1),
            slope_mb_per_hour=slope,
            windows=len(self.memory.readings),
            warnings=warnings,
        )
