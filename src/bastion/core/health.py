"""Health probes: liveness (no dependencies), readiness (dependencies, and not draining), and a
detailed report in ``application/health+json`` (draft-inadarei-api-health-check-06).

Dependency checks run concurrently, each under a timeout, and the result is cached for a second so a
burst of probes (or a client hammering the endpoint) costs the database one query, not one each.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from bastion.core import metrics
from bastion.core.lifecycle import Lifecycle

Status = Literal["pass", "warn", "fail"]


@dataclass(frozen=True, slots=True)
class HealthCheck:
    """A dependency: ``probe`` returns normally when it is usable and raises when it is not."""

    name: str
    probe: Callable[[], Awaitable[None]]
    component_type: str = "datastore"
    required: bool = True
    timeout: float = 2.0


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    status: Status
    latency_ms: float
    component_type: str
    output: str | None
    time: str


class Health:
    def __init__(
        self,
        lifecycle: Lifecycle,
        *,
        version: str,
        service_id: str = "bastion",
        cache_seconds: float = 1.0,
        reports: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.lifecycle = lifecycle
        self.version = version
        self.service_id = service_id
        self.cache_seconds = cache_seconds
        self.checks: list[HealthCheck] = []
        self.reports = reports
        self._cached: tuple[float, list[CheckResult]] | None = None
        self._running: asyncio.Future[list[CheckResult]] | None = None

    def add(self, check: HealthCheck) -> None:
        self.checks.append(check)

    async def results(self) -> list[CheckResult]:
        now = time.monotonic()
        if self._cached is not None and now - self._cached[0] < self.cache_seconds:
            return self._cached[1]
        if self._running is None:
            self._running = asyncio.ensure_future(self._run_all())
        running = self._running
        try:
            results = await asyncio.shield(running)
        finally:
            if running.done() and self._running is running:
                self._running = None
        self._cached = (time.monotonic(), results)
        return results

    async def _run_all(self) -> list[CheckResult]:
        return list(await asyncio.gather(*(self._run(check) for check in self.checks)))

    async def _run(self, check: HealthCheck) -> CheckResult:
        started = time.perf_counter()
        status: Status = "pass"
        output = None
        try:
            await asyncio.wait_for(check.probe(), check.timeout)
        except TimeoutError:
            status, output = ("fail" if check.required else "warn"), f"no answer within {check.timeout}s"
        except Exception as exc:
            status = "fail" if check.required else "warn"
            output = getattr(exc, "detail", None) or type(exc).__name__
        latency = round((time.perf_counter() - started) * 1000.0, 3)
        return CheckResult(
            check.name,
            status,
            latency,
            check.component_type,
            output,
            dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        )

    async def ready(self) -> tuple[bool, list[CheckResult]]:
        if not self.lifecycle.ready:
            return False, []
        results = await self.results()
        return all(r.status != "fail" for r in results), results

    async def detailed(self) -> tuple[Status, dict[str, Any]]:
        results = await self.results() if not self.lifecycle.draining else []
        statuses = {r.status for r in results}
        status: Status = (
            "fail" if "fail" in statuses or not self.lifecycle.ready else ("warn" if "warn" in statuses else "pass")
        )
        checks: dict[str, list[dict[str, Any]]] = {}
        for r in results:
            entry: dict[str, Any] = {
                "componentType": r.component_type,
                "observedValue": r.latency_ms,
                "observedUnit": "ms",
                "status": r.status,
                "time": r.time,
            }
            if r.output:
                entry["output"] = r.output
            checks[f"{r.name}:responseTime"] = [entry]
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")

        def system(value: float, unit: str) -> list[dict[str, Any]]:
            return [
                {"componentType": "system", "observedValue": value, "observedUnit": unit, "status": "pass", "time": now}
            ]

        checks["uptime"] = system(round(time.time() - self.lifecycle.started_at, 1), "s")
        checks["memory:utilization"] = system(metrics.update_process_metrics(), "bytes")
        checks["http:inFlight"] = system(self.lifecycle.in_flight, "requests")
        report = self.reports() if self.reports is not None else None
        if report is not None:
            memory = report["memory"]
            checks["memory:trend"] = [
                {
                    "componentType": "system",
                    "observedValue": memory["slope_mb_per_hour"],
                    "observedUnit": "MiB/h",
                    "status": "warn" if memory["warnings"] else "pass",
                    "time": now,
                    **({"output": "; ".join(memory["warnings"])} if memory["warnings"] else {}),
                }
            ]
        body: dict[str, Any] = {
            "status": status,
            "version": self.version,
            "serviceId": self.service_id,
            "description": f"bastion ({self.lifecycle.phase.value})",
            "checks": checks,
        }
        if report is not None:
            # the last window's slowest routes and the memory trend (admins only in production)
            body["reports"] = report
        if status != "pass":
            body["output"] = (
                "; ".join(f"{r.name}: {r.output}" for r in results if r.output) or self.lifecycle.phase.value
            )
        return status, body
