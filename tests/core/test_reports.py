"""The periodic reports: slowest route templates per window in bounded memory, and the worker's memory trend."""

from __future__ import annotations

import asyncio
import itertools

from bastion.core.observability.reports import OTHER, MemoryTrend, Reports, ReportSettings, RouteWindow, slowest
from tests.conftest import eventually, serve

MiB = 1_048_576


async def test_the_slow_routes_line_names_a_deliberately_slow_route_first(make_app, logs):
    """The job's ``slow routes`` line, every window, puts the slow test route before the fast ones."""
    app = make_app(reports={"every_seconds": 0.4})
    found: list[dict] = []

    def slow_first_line() -> bool:
        for line in logs():
            routes = line.get("routes") or []
            if (
                line.get("event") == "slow routes"
                and len(routes) >= 2
                and any(r["route"] == "GET /t/slow" for r in routes)
            ):
                found.append(line)
                return True
        return False

    async with serve(app) as http:
        for _ in range(10):
            await asyncio.gather(
                http.get("/t/slow", params={"seconds": 0.15}),
                *(http.get("/health") for _ in range(10)),
                *(http.get("/health/live") for _ in range(5)),
            )
            try:
                await eventually(slow_first_line, timeout=1.0)
                break
            except AssertionError:
                continue
    assert found, "no window held the slow route and a fast one"
    routes = found[0]["routes"]
    assert routes[0]["route"] == "GET /t/slow"
    assert routes[0]["p50_ms"] >= 150 and routes[0]["count"] >= 1
    assert all(r["p95_ms"] < routes[0]["p95_ms"] for r in routes[1:])
    assert {"count", "p50_ms", "p95_ms", "p99_ms"} <= set(routes[0])


async def test_detailed_health_shows_the_last_report(make_app):
    """/health/detailed carries the slow routes and a memory-trend check (before the first window ends too)."""
    async with serve(make_app()) as http:
        await http.get("/t/slow", params={"seconds": 0.05})
        response = await http.get("/health/detailed")
    body = response.json()
    assert body["reports"]["slow_routes"][0]["route"] == "GET /t/slow"
    assert body["reports"]["memory"]["rss_mb"] > 0
    trend = body["checks"]["memory:trend"][0]
    assert trend["observedUnit"] == "MiB/h" and trend["status"] in {"pass", "warn"}


def test_a_route_keeps_a_bounded_sample_and_its_count():
    """However many requests, a route keeps at most ``reservoir_size`` durations; percentiles stay close."""
    window = RouteWindow(reservoir_size=256)
    for i in range(100_000):
        window.observe("GET", "/x", (i % 1000) / 1000.0)  # uniform over 0..999 ms
    finished = window.rotate()
    reservoir = finished[("GET", "/x")]
    assert reservoir.count == 100_000 and len(reservoir.samples) == 256
    stats = slowest(finished, 5)[0]
    assert 400 <= stats.p50_ms <= 600 and stats.p95_ms >= 850
    assert window.peek() == {}


def test_routes_past_the_cap_are_counted_under_other():
    """A flood of distinct templates cannot grow the window past ``max_routes`` (+ one ``<other>`` per method)."""
    window = RouteWindow(reservoir_size=16, max_routes=10)
    for i in range(1000):
        window.observe("GET", f"/r{i}", 0.001)
    routes = window.peek()
    assert len(routes) == 11 and routes[("GET", OTHER)].count == 990


def _reports(readings: list[int], **settings) -> Reports:
    rss = iter(readings)
    ticks = itertools.count(0.0, 60.0)
    return Reports(
        ReportSettings(**settings), memory_warn_bytes=10_000 * MiB, rss=lambda: next(rss), clock=lambda: next(ticks)
    )


def test_steady_growth_is_a_warning():
    """RSS rising in each of the last windows is reported as a warning, with the slope in MiB/h."""
    reports = _reports([100 * MiB + i * 2 * MiB for i in range(8)], steady_windows=5)
    for _ in range(8):
        report = reports.report()
    assert report.slope_mb_per_hour == 120.0  # 2 MiB per 60 s window
    assert any("grew in each of the last 5 windows" in w for w in report.warnings)


def test_flat_memory_is_no_warning():
    """RSS that goes up and down around a level warns of nothing and has a slope near zero."""
    reports = _reports([100 * MiB + (i % 2) * MiB for i in range(8)])
    for _ in range(8):
        report = reports.report()
    assert report.warnings == [] and abs(report.slope_mb_per_hour) < 10


def test_rss_above_the_threshold_is_a_warning():
    """Above ``memory_warn_mb`` the report warns at once, trend or not."""
    reports = Reports(ReportSettings(), memory_warn_bytes=50 * MiB, rss=lambda: 60 * MiB)
    assert reports.report().warnings == ["rss above 50 MiB"]


def test_the_slope_is_least_squares_over_kept_windows():
    """Only the last ``memory_windows`` readings count."""
    trend = MemoryTrend(keep=3)
    for t, rss in [(0, 0), (3600, 500 * MiB), (7200, 100 * MiB), (10800, 100 * MiB), (14400, 100 * MiB)]:
        trend.add(t, rss)
    assert len(trend.readings) == 3 and trend.slope_mb_per_hour() == 0.0
