"""Hygiene: what makes a workflow hard to run and maintain — drafts, names, size."""

from __future__ import annotations

import re
from collections.abc import Iterator

from bastion.workflows.engine.findings import Category, Hit, Rule, Severity, rule
from bastion.workflows.engine.model import Context, Graph

RULES: list[Rule] = []
H = Category.HYGIENE

# GHL names a new workflow "New Workflow : 1700000000000"; exports and copies add "(copy)" or "Untitled".
DEFAULT_NAME = re.compile(r"(?i)^\s*(new workflow(\s*:\s*\d+)?|untitled( workflow)?|workflow\s*\d*|.*\(copy\)\s*)\s*$")


@rule(RULES, "draft-not-published", Severity.MEDIUM, H, "A draft: saved but not published")
def draft_not_published(g: Graph, ctx: Context) -> Iterator[Hit]:
    if g.workflow.status != "published":
        yield Hit(
            (),
            f"The workflow is '{g.workflow.status}': saving does not publish it, so it enrols nobody.",
            "Publish it when it is ready (toggle Draft → Publish, then Save).",
        )


@rule(RULES, "default-name", Severity.LOW, H, "The workflow has a default name")
def default_name(g: Graph, ctx: Context) -> Iterator[Hit]:
    name = g.workflow.name
    if not name.strip() or DEFAULT_NAME.match(name):
        yield Hit(
            (),
            f"The workflow is named '{name}': nobody can tell what it does from the list.",
            "Name it for what it does and for whom (e.g. 'Webinar signup - reminders').",
        )


@rule(RULES, "unnamed-step", Severity.LOW, H, "A step with no name")
def unnamed_step(g: Graph, ctx: Context) -> Iterator[Hit]:
    for s in g.workflow.steps:
        if not s.name.strip():
            yield Hit((s.id,), f"Step {s.id} ({s.type}) has no name.", "Name the step for what it does.")


@rule(RULES, "over-long-chain", Severity.LOW, H, "A path of too many steps")
def over_long_chain(g: Graph, ctx: Context) -> Iterator[Hit]:
    if (n := g.longest_chain) > ctx.max_chain:
        yield Hit(
            (),
            f"Some steps are {n} steps deep (more than {ctx.max_chain}): hard to follow and to debug.",
            "Split it into several workflows linked with 'Add to Workflow'.",
        )


@rule(RULES, "too-many-steps", Severity.LOW, H, "A workflow of too many steps")
def too_many_steps(g: Graph, ctx: Context) -> Iterator[Hit]:
    if (n := len(g.workflow.steps)) > ctx.max_steps:
        yield Hit(
            (),
            f"The workflow has {n} steps (more than {ctx.max_steps}).",
            "Split it by purpose into smaller workflows.",
        )
