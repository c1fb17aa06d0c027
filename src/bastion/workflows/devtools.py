"""The seed's five development endpoints (``/test/…``), served only with ``BASTION_ENV=development``.

POST   /test/analyze     analyse a definition without storing it (no sign-in)
GET    /test/workflows   the sample definitions
GET    /test/history     the caller's history (first page)
DELETE /test/history     clear the caller's history
GET    /test/health      the engine on the samples: rules, version, findings, time

In production the module does not register them: they answer 404 and are absent from the OpenAPI document.
"""

from __future__ import annotations

import time
from typing import Any

from litestar import delete, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody

from bastion.core.dependencies import AppRequest
from bastion.core.principal import require_user
from bastion.workflows import views
from bastion.workflows.engine import ENGINE_VERSION, RULES, analyze
from bastion.workflows.router import Workflows
from bastion.workflows.samples import SAMPLES
from bastion.workflows.schemas import HistoryPage


@post("/test/analyze", status_code=200, include_in_schema=False)
async def test_analyze(data: JSONBody[dict[str, Any]], workflows: NamedDependency[Workflows]) -> dict[str, Any]:
    report = analyze(workflows.service.parse(data))
    return {
        "score": report.score,
        "grade": report.grade,
        "engineVersion": report.engine_version,
        "issues": [views.issue(f) for f in report.findings],
    }


@get("/test/workflows", include_in_schema=False)
async def test_workflows() -> list[dict[str, Any]]:
    return list(SAMPLES.values())


@get("/test/history", include_in_schema=False)
async def test_history(request: AppRequest, workflows: NamedDependency[Workflows]) -> HistoryPage:
    return await workflows.history.page(require_user(request.principal))


@delete("/test/history", status_code=200, include_in_schema=False)
async def test_clear_history(request: AppRequest, workflows: NamedDependency[Workflows]) -> dict[str, int]:
    return {"deleted": await workflows.history.clear(require_user(request.principal))}


@get("/test/health", include_in_schema=False)
async def test_health(workflows: NamedDependency[Workflows]) -> dict[str, Any]:
    samples = []
    for name, definition in SAMPLES.items():
        started = time.perf_counter()
        report = analyze(workflows.service.parse(definition))
        samples.append({"name": name, "score": report.score, "grade": report.grade, "issues": len(report.findings),
                        "ms": round((time.perf_counter() - started) * 1000, 3)})  # fmt: skip
    return {"status": "pass", "rules": len(RULES), "engineVersion": ENGINE_VERSION, "samples": samples}


route_handlers = [test_analyze, test_workflows, test_history, test_clear_history, test_health]
