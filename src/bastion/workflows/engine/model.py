"""The one internal graph every source maps into: triggers, steps, the edges between them, the settings.

A workflow is a small directed graph. Triggers enrol contacts; each edge goes from a trigger or a step to the
next step, optionally labelled with the branch of a condition or split it leaves from. Go-to steps jump to a
target named in their config (an edge is added for it by the mapping, marked ``goto``). The model is plain
frozen data (msgspec Structs: built in C, several times faster than frozen dataclasses, which set each field
through ``object.__setattr__``, and untracked by the cyclic GC, which otherwise rescans every step of a big
workflow on each collection — both measured with bench/workflows.py); :class:`Graph` adds the indexes the
rules share (successors, predecessors, steps by kind), built once per analysis.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from functools import cached_property
from typing import Any

import msgspec


class Kind(enum.StrEnum):
    """What a step does, whatever the source called it (the preset mapping decides)."""

    MESSAGE = "message"  # SMS, email, WhatsApp, voicemail, FB/IG DM: reaches the contact
    WAIT = "wait"
    CONDITION = "condition"  # if/else
    SPLIT = "split"  # A/B split by percentage
    GOTO = "goto"
    WEBHOOK = "webhook"
    ADD_TAG = "add_tag"
    REMOVE_TAG = "remove_tag"
    UPDATE_FIELD = "update_field"
    ASSIGN_USER = "assign_user"
    NOTIFY = "notify"  # internal notification to users
    OPPORTUNITY = "opportunity"  # create or update an opportunity (pipeline stage)
    ADD_TO_WORKFLOW = "add_to_workflow"
    REMOVE_FROM_WORKFLOW = "remove_from_workflow"
    GOAL = "goal"  # goal event: contacts meeting it leave or jump
    END = "end"  # explicit end / remove from all workflows
    CODE = "code"  # custom code, math, formatters
    OTHER = "other"  # known GHL actions the rules have nothing to say about
    UNKNOWN = "unknown"  # a type the mapping does not know: kept, and reported


class Filter(msgspec.Struct, frozen=True, gc=False):
    field: str
    operator: str
    value: str


class Trigger(msgspec.Struct, frozen=True, gc=False):
    id: str
    type: str  # the normalised trigger type, e.g. ``contact_tag_added``
    name: str
    filters: tuple[Filter, ...] = ()

    def filter_values(self, *fields: str) -> frozenset[str]:
        return frozenset(f.value for f in self.filters if f.field in fields and f.value)


class Branch(msgspec.Struct, frozen=True, gc=False):
    id: str
    name: str
    conditions: int  # how many conditions the branch tests (0: the "none of the above" branch)
    percent: float | None = None  # for split steps


class Step(msgspec.Struct, frozen=True, gc=False):
    id: str
    kind: Kind
    type: str  # the source's own type name, kept as given
    name: str
    config: Mapping[str, Any] = msgspec.field(default_factory=dict)
    branches: tuple[Branch, ...] = ()


class Edge(msgspec.Struct, frozen=True, gc=False):
    source: str
    target: str
    branch: str | None = None
    goto: bool = False


class WorkflowSettings(msgspec.Struct, frozen=True, gc=False):
    allow_reentry: bool = False
    stop_on_response: bool = False
    allow_multiple_opportunities: bool = False
    timezone: str | None = None


class Workflow(msgspec.Struct, frozen=True, gc=False):
    id: str
    name: str
    status: str  # "draft" | "published"
    version: int
    settings: WorkflowSettings
    triggers: tuple[Trigger, ...]
    steps: tuple[Step, ...]
    edges: tuple[Edge, ...]


class Context(msgspec.Struct, frozen=True, gc=False):
    """What the account knows beyond the workflow: for dangling references and races between workflows.

    ``None`` means "not known" and turns the rule that needs it off (no guessing, no false positives).
    """

    users: frozenset[str] | None = None
    custom_fields: frozenset[str] | None = None
    pipeline_stages: frozenset[str] | None = None  # "pipelineId/stageId" and bare stage ids
    # the trigger signatures of the account's other published workflows, by workflow name
    other_triggers: Mapping[str, frozenset[tuple[str, tuple[Filter, ...]]]] = msgspec.field(default_factory=dict)
    max_chain: int = 60  # steps on one path before over-long-chain speaks
    max_steps: int = 250  # steps in one workflow before too-many-steps speaks


class Graph:
    """Indexes over one workflow, built once and shared by every rule."""

    __slots__ = ("__dict__", "by_kind", "ids", "pred", "step", "succ", "workflow")

    def __init__(self, workflow: Workflow) -> None:
        self.workflow = workflow
        self.step: dict[str, Step] = {}
        self.by_kind: dict[Kind, list[Step]] = {}
        for s in workflow.steps:
            self.step.setdefault(s.id, s)
            self.by_kind.setdefault(s.kind, []).append(s)
        self.ids = frozenset(self.step) | {t.id for t in workflow.triggers}
        self.succ: dict[str, list[Edge]] = {}
        self.pred: dict[str, list[Edge]] = {}
        for e in workflow.edges:
            self.succ.setdefault(e.source, []).append(e)
            self.pred.setdefault(e.target, []).append(e)

    def kind(self, kind: Kind) -> list[Step]:
        return self.by_kind.get(kind, [])

    def next_steps(self, step_id: str) -> list[str]:
        return [e.target for e in self.succ.get(step_id, ()) if e.target in self.step]

    @cached_property
    def depths(self) -> dict[str, int]:
        """For every step a trigger leads to, how many steps a contact passes through to reach it (the trigger's
        next step is 1): one breadth-first pass, which also gives :attr:`reachable`."""
        depth: dict[str, int] = {}
        frontier = [t.id for t in self.workflow.triggers]
        level = 0
        while frontier:
            level += 1
            nxt: list[str] = []
            for node in frontier:
                for e in self.succ.get(node, ()):
                    if e.target not in depth and e.target in self.step:
                        depth[e.target] = level
                        nxt.append(e.target)
            frontier = nxt
        return depth

    @cached_property
    def reachable(self) -> frozenset[str]:
        """Every step some trigger leads to."""
        return frozenset(self.depths)

    @property
    def longest_chain(self) -> int:
        """The most steps a contact must pass through to reach some step (the deepest step, by shortest path)."""
        return max(self.depths.values(), default=0)


def signature(trigger: Trigger) -> tuple[str, tuple[Filter, ...]]:
    """What makes two triggers fire on the same events (filter order does not matter)."""
    return (trigger.type, tuple(sorted(trigger.filters, key=lambda f: (f.field, f.operator, f.value))))
