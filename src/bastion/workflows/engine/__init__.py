"""The analysis engine: plain Python, no HTTP. ``parse`` (the GHL preset) → ``Workflow`` → ``analyze`` → ``Report``.

>>> report = analyze(parse(b'{"id": "w", "name": "Lead follow-up", "status": "published"}'))
>>> [f.rule_id for f in report.findings], report.score, report.grade
(['no-trigger'], 75, 'Good')
"""

from __future__ import annotations

from bastion.workflows.engine.analyze import ENGINE_VERSION, Overrides, Report, analyze
from bastion.workflows.engine.findings import Category, Finding, Rule, Severity
from bastion.workflows.engine.ghl import DefinitionError, parse
from bastion.workflows.engine.model import Context, Workflow
from bastion.workflows.engine.rules import BY_ID, RULES
from bastion.workflows.engine.score import SCORE_VERSION, grade, score

__all__ = [
    "BY_ID",
    "ENGINE_VERSION",
    "RULES",
    "SCORE_VERSION",
    "Category",
    "Context",
    "DefinitionError",
    "Finding",
    "Overrides",
    "Report",
    "Rule",
    "Severity",
    "Workflow",
    "analyze",
    "grade",
    "parse",
    "score",
]
