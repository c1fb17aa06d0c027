"""Findings and rules: the units the engine is made of.

A rule is a small object with an id, a default severity, a category, a one-line title and a ``check(graph,
context)`` that yields :class:`Hit` s (the node ids concerned, the message, the fix). The engine turns hits
into :class:`Finding` s with the severity the account's overrides give it.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from bastion.workflows.engine.model import Context, Graph


class Severity(enum.StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"

    @property
    def rank(self) -> int:
        """0 for the most severe: the first sort key of every list of findings."""
        return _RANK[self]


_RANK = {Severity.CRITICAL: 0, Severity.HIGH: 1, Severity.MEDIUM: 2, Severity.LOW: 3}


class Category(enum.StrEnum):
    STRUCTURE = "structure"
    BEHAVIOUR = "behaviour"
    CONFIGURATION = "configuration"
    HYGIENE = "hygiene"


@dataclass(frozen=True, slots=True)
class Hit:
    node_ids: tuple[str, ...]
    message: str
    fix: str


@dataclass(frozen=True, slots=True)
class Finding:
    rule_id: str
    severity: Severity
    category: Category
    message: str
    fix: str
    node_ids: tuple[str, ...]

    @property
    def sort_key(self) -> tuple[int, str, tuple[str, ...], str]:
        """Severity, then rule id, then node ids (then the message): the order of every list and of the free tier."""
        return (self.severity.rank, self.rule_id, self.node_ids, self.message)

    @property
    def key(self) -> tuple[str, tuple[str, ...]]:
        """What identifies "the same issue" across two analyses of one workflow (for diffs)."""
        return (self.rule_id, self.node_ids)


Check = Callable[[Graph, Context], Iterable[Hit]]


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    severity: Severity
    category: Category
    title: str
    check: Check


def rule(registry: list[Rule], id: str, severity: Severity, category: Category, title: str) -> Callable[[Check], Check]:
    """Register ``check`` as a rule in ``registry`` (a decorator: each rule file keeps its own list)."""

    def register(check: Check) -> Check:
        registry.append(Rule(id, severity, category, title, check))
        return check

    return register
