"""The GoHighLevel preset: a workflow definition as GHL-shaped JSON, mapped into the internal graph.

GHL publishes no schema for workflow definitions (its API returns metadata only). The shape read here is the
one the open-source GHL debugger (WorkflowMD) and third-party exports use — ``{triggers[], actions[],
connections[{from, to}]}`` — plus what the rules need: settings, filters on triggers, branches on if/else
and split steps, a go-to's ``target``::

    {"id": "wf_1", "name": "New lead nurture",
     "status": "published", "version": 3,
     "settings": {"allowReentry": false, "stopOnResponse": true},
     "triggers": [{"id": "t1", "type": "contact_tag_added", "filters": [{"field": "tag", "value": "lead"}]}],
     "actions": [{"id": "a1", "type": "send_sms", "name": "Welcome", "config": {"message": "Hi!"}}],
     "connections": [{"from": "t1", "to": "a1"}]}

Action types are normalised (lower case, ``-`` and spaces as ``_``) and looked up in :data:`ACTION_KINDS`;
a type not there becomes a step of kind ``unknown`` that keeps its type and config, and a rule reports it.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from bastion.workflows.engine.model import Branch, Edge, Filter, Kind, Step, Trigger, Workflow, WorkflowSettings

_ID = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
_NAME = Annotated[str, msgspec.Meta(max_length=500)]
_Scalar = str | int | float | bool | None


class DefinitionError(ValueError):
    """The JSON is not a workflow definition; the message names the offending path."""


class _Filter(msgspec.Struct, frozen=True, gc=False):
    field: _NAME
    value: _Scalar = None
    operator: _NAME = "is"


class _Trigger(msgspec.Struct, frozen=True, gc=False):
    id: _ID
    type: _ID
    name: _NAME = ""
    filters: list[_Filter] = []


class _Branch(msgspec.Struct, frozen=True, gc=False):
    id: _ID
    name: _NAME = ""
    conditions: list[dict[str, Any]] = []
    percent: float | None = None


class _Action(msgspec.Struct, frozen=True, gc=False):
    id: _ID
    type: _ID
    name: _NAME = ""
    config: dict[str, Any] = {}
    branches: list[_Branch] = []


class _Connection(msgspec.Struct, frozen=True, gc=False):
    source: _ID = msgspec.field(name="from")
    to: _ID = msgspec.field()
    branch: _ID | None = None


class _Settings(msgspec.Struct, frozen=True, gc=False, rename="camel"):
    allow_reentry: bool = False
    stop_on_response: bool = False
    allow_multiple_opportunities: bool = False
    timezone: str | None = None


class _Definition(msgspec.Struct, frozen=True, gc=False):
    id: _ID
    name: _NAME = ""
    status: str = "draft"
    version: Annotated[int, msgspec.Meta(ge=0)] = 1
    settings: _Settings = _Settings()
    triggers: list[_Trigger] = []
    actions: list[_Action] = []
    connections: list[_Connection] = []


# The GHL action types known to the preset (GHL's UI names, snake-cased, and the aliases exports use).
_KNOWN = {
    Kind.MESSAGE: "sms send_sms email send_email whatsapp send_whatsapp voicemail send_voicemail facebook_messenger"
    " instagram_dm gmb_message live_chat send_live_chat_message call",
    Kind.WAIT: "wait wait_step delay",
    Kind.CONDITION: "if_else condition if_else_condition",
    Kind.SPLIT: "split ab_split random_split",
    Kind.GOTO: "goto go_to",
    Kind.WEBHOOK: "webhook custom_webhook outbound_webhook",
    Kind.ADD_TAG: "add_contact_tag add_tag",
    Kind.REMOVE_TAG: "remove_contact_tag remove_tag",
    Kind.UPDATE_FIELD: "update_contact_field update_custom_field set_contact_field",
    Kind.ASSIGN_USER: "assign_user assign_to_user",
    Kind.NOTIFY: "internal_notification send_internal_notification notify_user",
    Kind.OPPORTUNITY: "create_opportunity update_opportunity create_update_opportunity",
    Kind.ADD_TO_WORKFLOW: "add_to_workflow",
    Kind.REMOVE_FROM_WORKFLOW: "remove_from_workflow",
    Kind.GOAL: "goal_event goal",
    Kind.END: "end end_workflow remove_from_all_workflows",
    Kind.CODE: "custom_code math_operation number_formatter text_formatter date_formatter",
    Kind.OTHER: "create_task add_note update_appointment_status send_review_request ai_prompt dnd_contact"
    " manual_action slack_message google_sheets update_contact_owner add_to_campaign remove_from_campaign"
    " create_contact find_contact",
}
ACTION_KINDS: dict[str, Kind] = {name: kind for kind, names in _KNOWN.items() for name in names.split()}


def normalise(type_: str) -> str:
    return type_.strip().lower().replace("-", "_").replace(" ", "_")


def _scalar(value: _Scalar) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def parse(data: bytes | str | dict[str, Any]) -> Workflow:
    """Map a GHL-shaped definition into the graph; :class:`DefinitionError` says why when it is not one."""
    try:
        raw = (
            msgspec.convert(data, _Definition)
            if isinstance(data, dict)
            else msgspec.json.decode(data, type=_Definition)
        )
    except (msgspec.ValidationError, msgspec.DecodeError) as error:
        raise DefinitionError(str(error)) from None
    return to_workflow(raw)


class _TriggersOnly(msgspec.Struct, frozen=True, gc=False):
    triggers: list[_Trigger] = []


def parse_triggers(data: bytes) -> tuple[Trigger, ...]:
    """Only the triggers of a stored definition (the rest is skipped by the decoder, not built): what the
    trigger-race rule needs of an account's other workflows."""
    try:
        raw = msgspec.json.decode(data, type=_TriggersOnly)
    except (msgspec.ValidationError, msgspec.DecodeError) as error:
        raise DefinitionError(str(error)) from None
    return _triggers(raw.triggers)


def _triggers(raw: list[_Trigger]) -> tuple[Trigger, ...]:
    return tuple(
        Trigger(
            id=t.id,
            type=normalise(t.type),
            name=t.name,
            filters=tuple(Filter(f.field, f.operator, _scalar(f.value)) for f in t.filters),
        )
        for t in raw
    )


def to_workflow(raw: _Definition) -> Workflow:
    triggers = _triggers(raw.triggers)
    steps: list[Step] = []
    edges: dict[tuple[str, str, str | None, bool], None] = {}  # ordered set: an export may repeat a go-to's edge
    for a in raw.actions:
        kind = ACTION_KINDS.get(a.type) or ACTION_KINDS.get(normalise(a.type), Kind.UNKNOWN)
        branches = (
            tuple(Branch(id=b.id, name=b.name, conditions=len(b.conditions), percent=b.percent) for b in a.branches)
            if a.branches
            else ()
        )
        steps.append(Step(id=a.id, kind=kind, type=a.type, name=a.name, config=a.config, branches=branches))
        if kind is Kind.GOTO and isinstance(target := a.config.get("target"), str) and target:
            edges[(a.id, target, None, True)] = None
    for c in raw.connections:
        if (c.source, c.to, c.branch, True) not in edges:  # the go-to's own jump, listed again
            edges.setdefault((c.source, c.to, c.branch, False), None)
    status = raw.status.strip().lower()
    s = raw.settings
    return Workflow(
        id=raw.id,
        name=raw.name,
        status=status,
        version=raw.version,
        settings=WorkflowSettings(s.allow_reentry, s.stop_on_response, s.allow_multiple_opportunities, s.timezone),
        triggers=triggers,
        steps=tuple(steps),
        edges=tuple(Edge(src, dst, branch, goto) for src, dst, branch, goto in edges),
    )
