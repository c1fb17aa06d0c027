"""HTTP routes of the workflow debugger: thin handlers over the service and the history.

GET    /api/workflows                       the caller's workflows (GHL and imported)
GET    /api/workflows/{id}/structure        the internal graph of one
POST   /api/workflows/import                store a GHL-shaped JSON definition
POST   /api/analyze                         analyse a stored workflow or an inline definition
GET    /api/history                         analyses, newest first (?cursor=&limit=&workflowId=)
GET    /api/analysis/{id}                   one analysis
DELETE /api/analysis/{id}
GET    /api/analysis/{id}/diff?base={id}    new / fixed / unchanged issues since ``base``
GET    /api/analysis/{id}/export?format=markdown|sarif
GET    /api/rules                           the rule catalogue
GET    /api/overrides, PUT /api/overrides   the account's severities and ignores
POST   /webhooks/ghl                        GoHighLevel's webhooks (signed; see webhooks.py)
GET    /webhooks/health
POST   /api/agency/locations                an agency's locations, each connected with its own tokens
GET    /api/agency/summary                  per location: workflows, analysed, worst score and grade

What a plan shows is decided in one place, :func:`entitlement`, from the caller's principal (identity keeps
the plan on it and pushes plan changes to every instance at once).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec
from litestar import Response, delete, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from bastion.core.dependencies import AppRequest
from bastion.core.errors import NotFound
from bastion.core.principal import require_user
from bastion.identity.service import Identity, PlanLimits
from bastion.workflows.engine import RULES
from bastion.workflows.ghl.source import GhlSource
from bastion.workflows.history import History
from bastion.workflows.schemas import (
    AnalysisDiff,
    AnalysisView,
    AnalyzeRequest,
    HistoryPage,
    Imported,
    OverridesBody,
    RuleView,
    WorkflowStructure,
    WorkflowSummary,
)
from bastion.workflows.service import WorkflowsService
from bastion.workflows.webhooks import Webhooks

Limit = Annotated[int, msgspec.Meta(ge=1, le=200)]


@dataclass(frozen=True, slots=True)
class Workflows:
    """What the handlers are given (one dependency: several would cost a task group per request)."""

    service: WorkflowsService
    history: History
    identity: Identity
    source: GhlSource | None
    webhooks: Webhooks


def entitlement(request: AppRequest, identity: Identity) -> tuple[str, PlanLimits]:
    """The one entitlement check: the signed-in user and their plan's limits (free: 3 issues shown)."""
    principal = request.principal
    user_id = require_user(principal)
    return user_id, identity.plan_limits(str(principal.attrs.get("plan", "free")))


@get("/api/workflows")
async def list_workflows(request: AppRequest, workflows: NamedDependency[Workflows]) -> list[WorkflowSummary]:
    user_id, _ = entitlement(request, workflows.identity)
    return await workflows.service.workflows(user_id)


@get("/api/workflows/{workflow_id:str}/structure")
async def workflow_structure(
    request: AppRequest, workflow_id: FromPath[str], workflows: NamedDependency[Workflows]
) -> WorkflowStructure:
    user_id, _ = entitlement(request, workflows.identity)
    return await workflows.service.structure(user_id, workflow_id)


@post("/api/workflows/import", status_code=201)
async def import_workflow(
    request: AppRequest, data: JSONBody[dict[str, Any]], workflows: NamedDependency[Workflows]
) -> Imported:
    user_id, _ = entitlement(request, workflows.identity)
    return await workflows.service.import_definition(user_id, data)


@post("/api/analyze", status_code=200)
async def analyze_workflow(
    request: AppRequest, data: JSONBody[AnalyzeRequest], workflows: NamedDependency[Workflows]
) -> AnalysisView:
    user_id, limits = entitlement(request, workflows.identity)
    return await workflows.service.analyze(user_id, data, limits)


@get("/api/history")
async def history(
    request: AppRequest,
    workflows: NamedDependency[Workflows],
    cursor: FromQuery[Annotated[str, msgspec.Meta(max_length=200)] | None] = None,
    limit: FromQuery[Limit | None] = None,
    workflow_id: Annotated[str | None, QueryParameter(name="workflowId", max_length=200)] = None,
) -> HistoryPage:
    user_id, _ = entitlement(request, workflows.identity)
    return await workflows.history.page(user_id, cursor, limit, workflow_id)


@get("/api/analysis/{analysis_id:str}")
async def one_analysis(
    request: AppRequest, analysis_id: FromPath[str], workflows: NamedDependency[Workflows]
) -> AnalysisView:
    user_id, limits = entitlement(request, workflows.identity)
    return await workflows.history.get(user_id, analysis_id, limits.workflow_issues_shown)


@delete("/api/analysis/{analysis_id:str}", status_code=204)
async def delete_analysis(
    request: AppRequest, analysis_id: FromPath[str], workflows: NamedDependency[Workflows]
) -> None:
    user_id, _ = entitlement(request, workflows.identity)
    await workflows.history.delete(user_id, analysis_id)


@get("/api/analysis/{analysis_id:str}/diff")
async def diff_analyses(
    request: AppRequest,
    analysis_id: FromPath[str],
    base: FromQuery[Annotated[str, msgspec.Meta(min_length=1, max_length=64)]],
    workflows: NamedDependency[Workflows],
) -> AnalysisDiff:
    user_id, limits = entitlement(request, workflows.identity)
    return await workflows.history.diff(user_id, base, analysis_id, limits.workflow_issues_shown)


@get("/api/analysis/{analysis_id:str}/export")
async def export_analysis(
    request: AppRequest,
    analysis_id: FromPath[str],
    workflows: NamedDependency[Workflows],
    format: FromQuery[Literal["markdown", "sarif"]] = "markdown",
) -> Response[bytes]:
    user_id, limits = entitlement(request, workflows.identity)
    media_type, body = await workflows.history.export(user_id, analysis_id, format, limits.workflow_issues_shown)
    name = f"analysis-{analysis_id}.{'md' if format == 'markdown' else 'sarif'}"
    return Response(body, media_type=media_type, headers={"Content-Disposition": f'attachment; filename="{name}"'})


@get("/api/rules")
async def rules() -> list[RuleView]:
    return [RuleView(r.id, r.severity.value, r.category.value, r.title) for r in RULES]


@get("/api/overrides")
async def get_overrides(request: AppRequest, workflows: NamedDependency[Workflows]) -> OverridesBody:
    user_id, _ = entitlement(request, workflows.identity)
    return await workflows.service.overrides_body(user_id)


@put("/api/overrides")
async def put_overrides(
    request: AppRequest, data: JSONBody[OverridesBody], workflows: NamedDependency[Workflows]
) -> OverridesBody:
    user_id, _ = entitlement(request, workflows.identity)
    return await workflows.service.set_overrides(user_id, data)


def _source(workflows: Workflows) -> GhlSource:
    if workflows.source is None:
        raise NotFound("GoHighLevel is not configured on this server.")
    return workflows.source


@post("/api/agency/locations", status_code=200)
async def agency_locations(request: AppRequest, workflows: NamedDependency[Workflows]) -> list[dict[str, Any]]:
    user_id, _ = entitlement(request, workflows.identity)
    made = await _source(workflows).agency_locations(user_id)
    return [{"locationId": c.resource_id, "name": c.name, "status": c.status} for c in made]


@get("/api/agency/summary")
async def agency_summary(request: AppRequest, workflows: NamedDependency[Workflows]) -> list[dict[str, Any]]:
    user_id, _ = entitlement(request, workflows.identity)
    return await _source(workflows).summary(user_id)


@post("/webhooks/ghl", status_code=200)
async def ghl_webhook(request: AppRequest, workflows: NamedDependency[Workflows]) -> dict[str, Any]:
    body = await request.body()  # the raw bytes: the signature is over them, not over a re-encoding
    headers = {k.lower(): v for k, v in request.headers.items()}
    return await workflows.webhooks.receive(body, headers)


@get("/webhooks/health")
async def webhooks_health(workflows: NamedDependency[Workflows]) -> dict[str, Any]:
    return await workflows.webhooks.health()


route_handlers = [
    ghl_webhook,
    webhooks_health,
    agency_locations,
    agency_summary,
    list_workflows,
    workflow_structure,
    import_workflow,
    analyze_workflow,
    history,
    one_analysis,
    delete_analysis,
    diff_analyses,
    export_analysis,
    rules,
    get_overrides,
    put_overrides,
]
