"""Every rule of the engine, in one tuple (each file keeps its own list, by category)."""

from __future__ import annotations

from bastion.workflows.engine.findings import Rule
from bastion.workflows.engine.rules import behaviour, configuration, hygiene, structure

RULES: tuple[Rule, ...] = (*structure.RULES, *behaviour.RULES, *configuration.RULES, *hygiene.RULES)
BY_ID: dict[str, Rule] = {r.id: r for r in RULES}
assert len(BY_ID) == len(RULES), "two rules share an id"
