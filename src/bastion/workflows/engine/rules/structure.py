"""Structure: the graph itself — triggers, reachability, dead ends, conditions, go-to cycles."""

from __future__ import annotations

from collections.abc import Iterator

from bastion.workflows.engine.findings import Category, Hit, Rule, Severity, rule
from bastion.workflows.engine.model import Context, Graph, Kind

RULES: list[Rule] = []
S = Category.STRUCTURE

# Triggers that fire on any tag, form, stage...: without a filter they enrol far more contacts than meant.
NEEDS_FILTER = frozenset({
    "contact_tag_added", "contact_tag_removed", "tag_added", "form_submitted", "survey_submitted",
    "pipeline_stage_changed", "opportunity_status_changed", "opportunity_stage_changed", "custom_field_changed",
    "contact_changed", "trigger_link_clicked", "order_submitted",
})  # fmt: skip


@rule(RULES, "no-trigger", Severity.CRITICAL, S, "The workflow has no trigger")
def no_trigger(g: Graph, ctx: Context) -> Iterator[Hit]:
    if not g.workflow.triggers:
        yield Hit((), "No trigger: no contact ever enters this workflow.", "Add a trigger (e.g. Contact Tag Added).")


@rule(RULES, "trigger-without-filter", Severity.HIGH, S, "A trigger that fires on everything")
def trigger_without_filter(g: Graph, ctx: Context) -> Iterator[Hit]:
    for t in g.workflow.triggers:
        if t.type in NEEDS_FILTER and not t.filters:
            yield Hit(
                (t.id,),
                f"Trigger '{t.name or t.type}' has no filter: it fires for every {t.type.replace('_', ' ')} event.",
                "Add a filter naming the tag, form, pipeline or stage this workflow is for.",
            )


@rule(RULES, "no-actions", Severity.HIGH, S, "Triggers with nothing after them")
def no_actions(g: Graph, ctx: Context) -> Iterator[Hit]:
    if g.workflow.triggers and not g.workflow.steps:
        yield Hit((), "The workflow has triggers but no actions.", "Add the actions, or delete the workflow.")


@rule(RULES, "duplicate-step-id", Severity.CRITICAL, S, "Two steps share an id")
def duplicate_step_id(g: Graph, ctx: Context) -> Iterator[Hit]:
    seen: set[str] = {t.id for t in g.workflow.triggers}
    for s in g.workflow.steps:
        if s.id in seen:
            yield Hit((s.id,), f"Id '{s.id}' is used by more than one step or trigger.", "Give every step its own id.")
        seen.add(s.id)


@rule(RULES, "dangling-connection", Severity.HIGH, S, "A connection to or from a step that does not exist")
def dangling_connection(g: Graph, ctx: Context) -> Iterator[Hit]:
    ids = g.ids
    for e in g.workflow.edges:
        if e.goto or (e.source in ids and e.target in ids):
            continue  # a go-to's target is goto-missing-target's concern
        missing = [n for n in (e.source, e.target) if n not in ids]
        if missing:
            yield Hit(
                (e.source, e.target),
                f"Connection {e.source} → {e.target} refers to missing step {', '.join(missing)}.",
                "Reconnect the step to an existing one, or remove the connection.",
            )


@rule(RULES, "orphan-step", Severity.MEDIUM, S, "A step connected to nothing")
def orphan_step(g: Graph, ctx: Context) -> Iterator[Hit]:
    if not g.workflow.triggers:
        return
    for s in g.workflow.steps:
        if s.id not in g.succ and s.id not in g.pred:
            yield Hit((s.id,), f"Step '{s.name or s.id}' is connected to nothing.", "Connect it, or delete it.")


@rule(RULES, "unreachable-step", Severity.HIGH, S, "A step no trigger leads to")
def unreachable_step(g: Graph, ctx: Context) -> Iterator[Hit]:
    if not g.workflow.triggers:
        return  # no-trigger says it once instead of once per step
    reach = g.reachable
    for s in g.workflow.steps:
        if s.id not in reach and (s.id in g.succ or s.id in g.pred):  # isolated steps are orphan-step's
            yield Hit(
                (s.id,),
                f"Step '{s.name or s.id}' is never reached from a trigger.",
                "Connect it to the path from a trigger, or delete it.",
            )


@rule(RULES, "ambiguous-next", Severity.MEDIUM, S, "An action with more than one next step")
def ambiguous_next(g: Graph, ctx: Context) -> Iterator[Hit]:
    for source, edges in g.succ.items():
        if len(edges) < 2 or (s := g.step.get(source)) is None or s.kind in (Kind.CONDITION, Kind.SPLIT):
            continue  # one way out (most steps), a trigger, or a step made to branch
        targets = {e.target for e in edges if not e.goto}
        if len(targets) > 1:
            yield Hit(
                (s.id, *sorted(targets)),
                f"Step '{s.name or s.id}' continues to {len(targets)} steps; GHL runs actions in one line.",
                "Use an If/Else or a Split to branch, and keep one next step per action.",
            )


@rule(RULES, "empty-condition", Severity.HIGH, S, "An If/Else branch that tests nothing")
def empty_condition(g: Graph, ctx: Context) -> Iterator[Hit]:
    for s in g.kind(Kind.CONDITION):
        tested = [b for b in s.branches[:-1] if b.conditions == 0] if len(s.branches) > 1 else []
        if not s.branches or (len(s.branches) == 1 and s.branches[0].conditions == 0):
            yield Hit((s.id,), f"If/Else '{s.name or s.id}' has no conditions.", "Add the conditions it should test.")
        for b in tested:
            yield Hit(
                (s.id,),
                f"Branch '{b.name or b.id}' of If/Else '{s.name or s.id}' has no condition: it always matches.",
                "Add conditions to the branch, or remove it and keep one 'None' branch last.",
            )


@rule(RULES, "single-branch-condition", Severity.MEDIUM, S, "An If/Else with only one way out")
def single_branch_condition(g: Graph, ctx: Context) -> Iterator[Hit]:
    for s in g.kind(Kind.CONDITION):
        if len(s.branches) == 1 and s.branches[0].conditions > 0:
            yield Hit(
                (s.id,),
                f"If/Else '{s.name or s.id}' has one branch: contacts that do not match silently stop here.",
                "Add a 'None' branch that says what happens to the others (even an explicit End).",
            )


@rule(RULES, "condition-dead-end", Severity.HIGH, S, "An If/Else whose branches all lead nowhere")
def condition_dead_end(g: Graph, ctx: Context) -> Iterator[Hit]:
    for s in g.kind(Kind.CONDITION):
        if s.branches and s.id not in g.succ:
            yield Hit(
                (s.id,),
                f"No branch of If/Else '{s.name or s.id}' leads to a step: the test decides nothing.",
                "Connect the branches to their actions, or remove the If/Else.",
            )


@rule(RULES, "wait-dead-end", Severity.MEDIUM, S, "A wait with nothing after it")
def wait_dead_end(g: Graph, ctx: Context) -> Iterator[Hit]:
    for s in g.kind(Kind.WAIT):
        if s.id not in g.succ and s.id in g.reachable:
            yield Hit(
                (s.id,),
                f"Wait '{s.name or s.id}' is the last step: contacts wait and then nothing happens.",
                "Add the step that should follow the wait, or remove the wait.",
            )


@rule(RULES, "goto-missing-target", Severity.HIGH, S, "A Go To with no valid target")
def goto_missing_target(g: Graph, ctx: Context) -> Iterator[Hit]:
    for s in g.kind(Kind.GOTO):
        target = s.config.get("target")
        if not isinstance(target, str) or target not in g.step:
            where = "nothing" if not target else f"{target!r}, which does not exist"
            yield Hit(
                (s.id,),
                f"Go To '{s.name or s.id}' points to {where}.",
                "Pick the step the Go To should jump to.",
            )


@rule(RULES, "goto-cycle-without-wait", Severity.CRITICAL, S, "A Go To loop with no wait in it")
def goto_cycle_without_wait(g: Graph, ctx: Context) -> Iterator[Hit]:
    # A loop is only dangerous through a Go To (the other edges run forwards); it spins hot when no wait or
    # exit breaks it. From each Go To's target, search forward over non-wait steps for the Go To itself.
    for s in g.kind(Kind.GOTO):
        target = s.config.get("target")
        if not isinstance(target, str) or target not in g.step:
            continue
        path = _path_without_wait(g, target, s.id)
        if path is not None:
            yield Hit(
                (s.id, *sorted(set(path) - {s.id})),
                f"Go To '{s.name or s.id}' loops back through {len(path)} step(s) with no Wait: contacts spin in it.",
                "Put a Wait in the loop, or a condition that lets contacts leave it.",
            )


def _path_without_wait(g: Graph, start: str, goal: str) -> list[str] | None:
    parent: dict[str, str | None] = {start: None}
    todo = [start]
    while todo:
        node = todo.pop()
        if node == goal:
            path: list[str] = []
            cur: str | None = node
            while cur is not None:
                path.append(cur)
                cur = parent[cur]
            return path
        step = g.step.get(node)
        if step is None or step.kind in (Kind.WAIT, Kind.END, Kind.GOAL):
            continue
        for e in g.succ.get(node, ()):
            if e.target not in parent:
                parent[e.target] = node
                todo.append(e.target)
    return None


@rule(RULES, "split-percentages", Severity.HIGH, S, "A split whose percentages do not add up to 100")
def split_percentages(g: Graph, ctx: Context) -> Iterator[Hit]:
    for s in g.kind(Kind.SPLIT):
        total = sum(b.percent or 0.0 for b in s.branches)
        if len(s.branches) < 2 or abs(total - 100.0) > 0.01:
            yield Hit(
                (s.id,),
                f"Split '{s.name or s.id}' has {len(s.branches)} path(s) adding up to {total:g} %.",
                "Give the split at least two paths whose percentages add up to 100.",
            )
