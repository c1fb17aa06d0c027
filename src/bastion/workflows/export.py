"""An analysis as Markdown (to paste in a ticket) and as SARIF 2.1.0 (for code-scanning tools)."""

from __future__ import annotations

from typing import Any

import msgspec

from bastion.workflows.engine import BY_ID
from bastion.workflows.schemas import AnalysisView

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_SARIF_LEVEL = {"critical": "error", "high": "error", "medium": "warning", "low": "note"}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(a: AnalysisView) -> str:
    lines = [
        f"# {a.workflow_name or a.workflow_id}: {a.score}/100 ({a.grade})",
        "",
        f"Analysis `{a.id}` of version {a.workflow_version}, {a.created_at}, engine {a.engine_version}.",
        f"Issues: {a.counts.critical} critical, {a.counts.high} high, {a.counts.medium} medium, {a.counts.low} low.",
        "",
    ]
    if a.issues:
        lines += ["| Severity | Rule | Steps | Issue | Fix |", "|---|---|---|---|---|"]
        for i in a.issues:
            steps = ", ".join(f"`{n}`" for n in i.node_ids) or "workflow"
            lines.append(f"| {i.severity} | `{i.rule_id}` | {steps} | {_cell(i.message)} | {_cell(i.fix)} |")
    else:
        lines.append("No issues found.")
    if a.hidden_issues:
        lines += ["", f"{a.hidden_issues} more issue(s) on the Pro plan."]
    return "\n".join(lines) + "\n"


def sarif(a: AnalysisView, tool_uri: str = "https://github.com/bastion/workflows") -> bytes:
    used = sorted({i.rule_id for i in a.issues})
    rules = [
        {
            "id": r,
            "name": r,
            "shortDescription": {"text": BY_ID[r].title if r in BY_ID else r},
            "properties": {"category": BY_ID[r].category.value if r in BY_ID else "unknown"},
        }
        for r in used
    ]
    artifact = f"ghl-workflow/{a.workflow_id}"
    results: list[dict[str, Any]] = [
        {
            "ruleId": i.rule_id,
            "ruleIndex": used.index(i.rule_id),
            "level": _SARIF_LEVEL[i.severity],
            "message": {"text": f"{i.message} Fix: {i.fix}"},
            "locations": [
                {
                    "physicalLocation": {"artifactLocation": {"uri": artifact}},
                    "logicalLocations": [{"name": n, "kind": "member"} for n in i.node_ids] or [{"name": "workflow"}],
                }
            ],
            "properties": {"severity": i.severity, "category": i.category},
        }
        for i in a.issues
    ]
    doc = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "bastion-workflows",
                        "version": a.engine_version,
                        "informationUri": tool_uri,
                        "rules": rules,
                    }
                },
                "results": results,
                "properties": {"score": a.score, "grade": a.grade, "hiddenIssues": a.hidden_issues},
            }
        ],
    }
    return msgspec.json.encode(doc)
