"""Rows and engine results as API bodies, and the one entitlement rule: how many issues a plan shows."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import msgspec

from bastion.workflows.engine import Finding, Report
from bastion.workflows.engine.model import Workflow
from bastion.workflows.models import AnalysisRow, WorkflowRow
from bastion.workflows.schemas import (
    AnalysisSummary,
    AnalysisView,
    Counts,
    Issue,
    StepView,
    WorkflowStructure,
    WorkflowSummary,
)

_issues = msgspec.json.Decoder(list[Issue])


def iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat().replace("+00:00", "Z")


def visible(issues: Sequence[Issue], shown: int | None) -> tuple[list[Issue], int]:
    """The issues a plan shows and how many it hides: the first ``shown`` in report order (severity, then rule
    id, then node ids — the order they are stored in), all when ``shown`` is None (pro)."""
    if shown is None or len(issues) <= shown:
        return list(issues), 0
    return list(issues[:shown]), len(issues) - shown


def issue(f: Finding) -> Issue:
    return Issue(f.rule_id, f.severity.value, f.category.value, f.message, f.fix, list(f.node_ids))


def encode_findings(report: Report) -> str:
    return msgspec.json.encode([issue(f) for f in report.findings]).decode()


def decode_findings(row: AnalysisRow) -> list[Issue]:
    return _issues.decode(row.findings)


def summary(row: WorkflowRow) -> WorkflowSummary:
    return WorkflowSummary(
        id=row.id,
        name=row.name,
        status=row.status,
        version=row.version,
        source=row.source,
        location_id=row.location_id or None,
        has_definition=row.definition is not None,
        updated_at=iso(row.updated_at_ms),
    )


def analysis_view(row: AnalysisRow, shown: int | None) -> AnalysisView:
    issues = decode_findings(row)
    counts = {s: 0 for s in ("critical", "high", "medium", "low")}
    for i in issues:
        counts[i.severity] += 1
    show, hidden = visible(issues, shown)
    return AnalysisView(
        id=row.id,
        workflow_id=row.workflow_id,
        workflow_name=row.workflow_name,
        workflow_version=row.workflow_version,
        engine_version=row.engine_version,
        score=row.score,
        grade=row.grade,
        counts=Counts(**counts),
        issues=show,
        total_issues=len(issues),
        hidden_issues=hidden,
        created_at=iso(row.created_at_ms),
    )


def analysis_summary(row: AnalysisRow, total: int) -> AnalysisSummary:
    return AnalysisSummary(
        id=row.id,
        workflow_id=row.workflow_id,
        workflow_name=row.workflow_name,
        workflow_version=row.workflow_version,
        score=row.score,
        grade=row.grade,
        total_issues=total,
        created_at=iso(row.created_at_ms),
    )


def structure(row: WorkflowRow, wf: Workflow) -> WorkflowStructure:
    nexts: dict[str, list[dict[str, object]]] = {}
    for e in wf.edges:
        nexts.setdefault(e.source, []).append({"to": e.target, "branch": e.branch, "goto": e.goto})
    return WorkflowStructure(
        id=row.id,
        name=wf.name,
        status=wf.status,
        version=wf.version,
        settings={
            "allowReentry": wf.settings.allow_reentry,
            "stopOnResponse": wf.settings.stop_on_response,
            "allowMultipleOpportunities": wf.settings.allow_multiple_opportunities,
            "timezone": wf.settings.timezone,
        },
        triggers=[
            {
                "id": t.id,
                "type": t.type,
                "name": t.name,
                "filters": [{"field": f.field, "operator": f.operator, "value": f.value} for f in t.filters],
                "next": nexts.get(t.id, []),
            }
            for t in wf.triggers
        ],
        steps=[
            StepView(
                id=s.id,
                kind=s.kind.value,
                type=s.type,
                name=s.name,
                next=list(nexts.get(s.id, [])),
                branches=[
                    {"id": b.id, "name": b.name, "conditions": b.conditions, "percent": b.percent} for b in s.branches
                ],
            )
            for s in wf.steps
        ],
        unknown_types=sorted({s.type for s in wf.steps if s.kind.value == "unknown"}),
    )
