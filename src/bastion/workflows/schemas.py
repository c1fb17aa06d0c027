"""Request and response bodies of the workflows API (msgspec, camelCase on the wire)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

Severity = Literal["critical", "high", "medium", "low"]
_ID = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]


class WorkflowSummary(msgspec.Struct, rename="camel", frozen=True):
    id: str
    name: str
    status: str
    version: int
    source: str
    location_id: str | None
    has_definition: bool
    updated_at: str


class Imported(msgspec.Struct, rename="camel", frozen=True):
    workflow: WorkflowSummary
    created: bool


class StepView(msgspec.Struct, rename="camel", frozen=True):
    id: str
    kind: str
    type: str
    name: str
    next: list[dict[str, Any]]
    branches: list[dict[str, Any]]


class WorkflowStructure(msgspec.Struct, rename="camel", frozen=True):
    id: str
    name: str
    status: str
    version: int
    settings: dict[str, Any]
    triggers: list[dict[str, Any]]
    steps: list[StepView]
    unknown_types: list[str]


class AnalyzeRequest(msgspec.Struct, rename="camel", frozen=True, forbid_unknown_fields=True):
    """Analyse a stored workflow (``workflowId``) or a definition given inline (stored as an import)."""

    workflow_id: _ID | None = None
    definition: dict[str, Any] | None = None


class Issue(msgspec.Struct, rename="camel", frozen=True):
    rule_id: str
    severity: str
    category: str
    message: str
    fix: str
    node_ids: list[str]


class Counts(msgspec.Struct, rename="camel", frozen=True):
    critical: int
    high: int
    medium: int
    low: int


class AnalysisView(msgspec.Struct, rename="camel", frozen=True):
    id: str
    workflow_id: str
    workflow_name: str
    workflow_version: int
    engine_version: str
    score: int
    grade: str
    counts: Counts
    issues: list[Issue]
    total_issues: int
    hidden_issues: int
    """Issues the plan does not show (free: all but the 3 most severe); upgrading shows them."""
    created_at: str


class AnalysisSummary(msgspec.Struct, rename="camel", frozen=True):
    id: str
    workflow_id: str
    workflow_name: str
    workflow_version: int
    score: int
    grade: str
    total_issues: int
    created_at: str


class HistoryPage(msgspec.Struct, rename="camel", frozen=True):
    items: list[AnalysisSummary]
    next_cursor: str | None


class DiffSide(msgspec.Struct, rename="camel", frozen=True):
    issues: list[Issue]
    total: int
    hidden: int


class AnalysisDiff(msgspec.Struct, rename="camel", frozen=True):
    base_id: str
    head_id: str
    workflow_id: str
    score_change: int
    new: DiffSide
    fixed: DiffSide
    unchanged: DiffSide


class IgnoreEntry(msgspec.Struct, rename="camel", frozen=True, forbid_unknown_fields=True):
    rule_id: _ID
    node_id: _ID | None = None


class OverridesBody(msgspec.Struct, rename="camel", frozen=True, forbid_unknown_fields=True):
    """An account's whole set of overrides (PUT replaces it)."""

    severity: dict[str, Severity] = {}
    ignore: list[IgnoreEntry] = []


class RuleView(msgspec.Struct, rename="camel", frozen=True):
    id: str
    severity: str
    category: str
    title: str
