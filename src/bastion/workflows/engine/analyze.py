"""Run every rule over one workflow: overrides and ignores applied, findings in one deterministic order."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from bastion.workflows.engine.findings import Finding, Severity
from bastion.workflows.engine.model import Context, Graph, Workflow
from bastion.workflows.engine.rules import RULES
from bastion.workflows.engine.score import SCORE_VERSION, grade, score

ENGINE_VERSION = f"rules-{len(RULES)}.1+{SCORE_VERSION}"


@dataclass(frozen=True, slots=True)
class Overrides:
    """An account's choices: a severity per rule, rules ignored, and (rule, node) pairs ignored.

    Ignoring a (rule, node) pair drops that rule's findings that concern the node; a finding about the whole
    workflow (no node ids) is ignored only by ignoring the rule.
    """

    severity: Mapping[str, Severity] = field(default_factory=dict)
    ignore_rules: frozenset[str] = frozenset()
    ignore_nodes: frozenset[tuple[str, str]] = frozenset()


@dataclass(frozen=True, slots=True)
class Report:
    findings: tuple[Finding, ...]
    score: int
    grade: str
    counts: Mapping[Severity, int]
    engine_version: str
    ignored: int  # findings dropped by the account's ignores


NO_OVERRIDES = Overrides()
NO_CONTEXT = Context()


def analyze(workflow: Workflow, context: Context = NO_CONTEXT, overrides: Overrides = NO_OVERRIDES) -> Report:
    graph = Graph(workflow)
    findings: list[Finding] = []
    ignored = 0
    for r in RULES:
        if r.id in overrides.ignore_rules:
            continue
        severity = overrides.severity.get(r.id, r.severity)
        for hit in r.check(graph, context):
            if overrides.ignore_nodes and any((r.id, n) in overrides.ignore_nodes for n in hit.node_ids):
                ignored += 1
                continue
            findings.append(Finding(r.id, severity, r.category, hit.message, hit.fix, hit.node_ids))
    findings.sort(key=lambda f: f.sort_key)
    counts = Counter(f.severity for f in findings)
    value = score(f.severity for f in findings)
    return Report(
        findings=tuple(findings),
        score=value,
        grade=grade(value),
        counts={s: counts.get(s, 0) for s in Severity},
        engine_version=ENGINE_VERSION,
        ignored=ignored,
    )
