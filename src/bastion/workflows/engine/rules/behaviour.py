"""Behaviour: what contacts live through — re-entry, self-retriggering, races, message pacing."""

from __future__ import annotations

from collections.abc import Iterator

from bastion.workflows.engine.findings import Category, Hit, Rule, Severity, rule
from bastion.workflows.engine.model import Context, Filter, Graph, Kind, signature
from bastion.workflows.engine.rules.util import channel, label, strings

RULES: list[Rule] = []
B = Category.BEHAVIOUR

# Triggers GHL re-enters whatever the re-entry setting says: a sequence on them is not a one-time sequence.
RECURRING = frozenset({
    "appointment_booked", "appointment_status", "customer_booked_appointment", "invoice_paid", "payment_received",
    "birthday_reminder", "custom_date_reminder", "inbound_webhook", "customer_replied", "scheduler",
})  # fmt: skip


def _is_nurture(g: Graph) -> bool:
    """A one-time drip: two messages or more with a wait, started by an event that happens once per contact.

    A one-shot notification is not a sequence, and appointment or invoice reminders belong to their event.
    """
    w = g.workflow
    return (
        len(g.kind(Kind.MESSAGE)) >= 2
        and bool(g.kind(Kind.WAIT))
        and bool(w.triggers)
        and all(t.type not in RECURRING for t in w.triggers)
    )


@rule(RULES, "reentry-on-sequence", Severity.HIGH, B, "Re-entry allowed on a one-time sequence")
def reentry_on_sequence(g: Graph, ctx: Context) -> Iterator[Hit]:
    if g.workflow.settings.allow_reentry and _is_nurture(g):
        yield Hit(
            (),
            "'Allow re-entry' is on for a message sequence: a contact re-triggering it gets the whole sequence again.",
            "Turn 'Allow re-entry' off in the workflow settings.",
        )


@rule(RULES, "no-stop-on-response", Severity.MEDIUM, B, "A nurture sequence that keeps going after a reply")
def no_stop_on_response(g: Graph, ctx: Context) -> Iterator[Hit]:
    if _is_nurture(g) and not g.workflow.settings.stop_on_response and not g.kind(Kind.GOAL):
        yield Hit(
            (),
            "No 'Stop on response' and no goal: contacts who reply keep receiving the sequence.",
            "Turn on 'Stop on response' in the settings, or add a Goal Event for a reply.",
        )


@rule(RULES, "self-retrigger", Severity.CRITICAL, B, "The workflow sets its own trigger")
def self_retrigger(g: Graph, ctx: Context) -> Iterator[Hit]:
    for t in g.workflow.triggers:
        if t.type in ("contact_tag_added", "tag_added"):
            tags = t.filter_values("tag", "tags")
            for s in g.kind(Kind.ADD_TAG):
                hit = sorted(tags & set(strings(s.config, "tags", "tag")))
                if hit:
                    yield Hit(
                        (t.id, s.id),
                        f"Step '{label(s)}' adds tag '{hit[0]}', which triggers this workflow again.",
                        "Add a different tag, or filter the trigger so the workflow cannot start itself.",
                    )
        elif t.type in ("pipeline_stage_changed", "opportunity_stage_changed"):
            stages = t.filter_values("stage", "stageId", "pipeline_stage")
            for s in g.kind(Kind.OPPORTUNITY):
                stage = s.config.get("stageId") or s.config.get("stage")
                if isinstance(stage, str) and stage in stages:
                    yield Hit(
                        (t.id, s.id),
                        f"Step '{label(s)}' moves the opportunity into stage '{stage}', which triggers this workflow.",
                        "Move it to another stage, or exclude that stage in the trigger's filter.",
                    )
        elif t.type == "custom_field_changed":
            fields = t.filter_values("field", "custom_field")
            for s in g.kind(Kind.UPDATE_FIELD):
                f = s.config.get("field")
                if isinstance(f, str) and f in fields:
                    yield Hit(
                        (t.id, s.id),
                        f"Step '{label(s)}' changes field '{f}', which triggers this workflow.",
                        "Update another field, or add a condition to the trigger's filter.",
                    )


@rule(RULES, "adds-to-itself", Severity.HIGH, B, "The workflow adds contacts to itself")
def adds_to_itself(g: Graph, ctx: Context) -> Iterator[Hit]:
    for s in g.kind(Kind.ADD_TO_WORKFLOW):
        if g.workflow.id in strings(s.config, "workflowId", "workflow_id", "workflow"):
            yield Hit(
                (s.id,),
                f"Step '{label(s)}' adds the contact to this same workflow: an endless loop.",
                "Use a Go To with a Wait for a loop, or add the contact to another workflow.",
            )


@rule(RULES, "duplicate-triggers", Severity.MEDIUM, B, "Two identical triggers")
def duplicate_triggers(g: Graph, ctx: Context) -> Iterator[Hit]:
    groups: dict[tuple[str, tuple[Filter, ...]], list[str]] = {}
    for t in g.workflow.triggers:
        groups.setdefault(signature(t), []).append(t.id)
    for ids in groups.values():
        if len(ids) > 1:
            ids.sort()  # the same hit whatever order the export lists the triggers in
            yield Hit(
                tuple(ids),
                f"Triggers {', '.join(ids)} are the same: contacts may enter twice and get everything twice.",
                "Keep one of these triggers and delete the others.",
            )


@rule(RULES, "trigger-race", Severity.MEDIUM, B, "Another workflow starts on the same event")
def trigger_race(g: Graph, ctx: Context) -> Iterator[Hit]:
    if not ctx.other_triggers or not g.kind(Kind.MESSAGE):
        return
    for t in g.workflow.triggers:
        sig = signature(t)
        others = sorted(name for name, sigs in ctx.other_triggers.items() if sig in sigs)
        if others:
            yield Hit(
                (t.id,),
                f"Trigger '{t.name or t.type}' is also the trigger of {', '.join(repr(o) for o in others[:3])}: "
                "both run on the same event and may message the contact twice.",
                "Merge the workflows, or make their triggers' filters exclusive.",
            )


@rule(RULES, "back-to-back-messages", Severity.MEDIUM, B, "Messages sent back to back with no wait")
def back_to_back_messages(g: Graph, ctx: Context) -> Iterator[Hit]:
    for s in g.kind(Kind.MESSAGE):
        for nxt in g.next_steps(s.id):
            n = g.step[nxt]
            if n.kind is Kind.MESSAGE and channel(n) == channel(s):
                yield Hit(
                    (s.id, n.id),
                    f"'{label(s)}' and '{label(n)}' send two {channel(s)} messages at the same moment.",
                    "Put a Wait between them, or merge them into one message.",
                )
