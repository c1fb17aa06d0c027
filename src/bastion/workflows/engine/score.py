"""The health score and grade (WorkflowMD's formula), versioned so stored analyses say which one made them.

``score = max(0, 100 - (25·critical + 15·high + 5·medium + 2·low))``; grades: ≥ 90 Excellent, ≥ 70 Good,
≥ 50 Needs Attention, ≥ 30 High Risk, below Critical. Every weight is positive, so one more finding never
raises the score (a property test checks it).
"""

from __future__ import annotations

from collections.abc import Iterable

from bastion.workflows.engine.findings import Severity

SCORE_VERSION = "workflowmd-1"
WEIGHTS = {Severity.CRITICAL: 25, Severity.HIGH: 15, Severity.MEDIUM: 5, Severity.LOW: 2}
GRADES = ((90, "Excellent"), (70, "Good"), (50, "Needs Attention"), (30, "High Risk"))


def score(severities: Iterable[Severity]) -> int:
    return max(0, 100 - sum(WEIGHTS[s] for s in severities))


def grade(value: int) -> str:
    for floor, name in GRADES:
        if value >= floor:
            return name
    return "Critical"
