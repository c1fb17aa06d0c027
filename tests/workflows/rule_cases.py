"""For every rule: a workflow that triggers it and a near miss that does not (the rule's false-positive guard)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bastion.workflows.engine import Context
from bastion.workflows.engine.model import Filter
from tests.workflows.builders import base, chain, condition, edit, link, sms, step, wait

KNOWN = Context(users=frozenset({"usr_1"}), custom_fields=frozenset({"score"}), pipeline_stages=frozenset({"st_won"}))
TAG_TRIGGER = [
    {"id": "t1", "type": "contact_tag_added", "name": "Webinar", "filters": [{"field": "tag", "value": "webinar"}]}
]


@dataclass
class Case:
    bad: dict[str, Any]
    good: dict[str, Any]
    nodes: tuple[str, ...]  # the node ids the bad one's finding names
    context: Context = field(default_factory=Context)


def _goto_loop(with_wait: bool) -> dict[str, Any]:
    middle = [wait("a2")] if with_wait else [sms("a2", "Second text")]
    wf = chain(sms("a1"), *middle, step("g1", "goto", target="a1"))
    return wf


def _branches(*conns: tuple[str, str, str]) -> list[dict[str, str]]:
    return [{"from": a, "to": b, "branch": br} for a, b, br in conns]


def _nurture(**settings: Any) -> dict[str, Any]:
    return chain(
        sms("a1"),
        wait("w1"),
        sms("a2", "Day two"),
        settings={"allowReentry": False, "stopOnResponse": True, **settings},
    )


CASES: dict[str, Case] = {
    "no-trigger": Case(edit(base(), triggers=[], connections=[]), base(), ()),
    "trigger-without-filter": Case(
        edit(base(), triggers=[{"id": "t1", "type": "contact_tag_added", "name": "Any tag"}]),
        edit(base(), triggers=[{"id": "t1", "type": "contact_created", "name": "New contact"}]),
        ("t1",),
    ),
    "no-actions": Case(edit(base(), actions=[], connections=[]), base(), ()),
    "duplicate-step-id": Case(
        edit(chain(sms("a1"), sms("a2")), actions=[sms("a1"), sms("a1")]) | {"connections": link("t1", "a1")},
        chain(sms("a1"), wait("w"), sms("a2")),
        ("a1",),
    ),
    "dangling-connection": Case(
        edit(base(), connections=[*link("t1", "a1"), {"from": "a1", "to": "a_gone"}]), base(), ("a1", "a_gone")
    ),
    "orphan-step": Case(
        edit(base(), actions=[sms("a1"), sms("a9", "Lost")]),
        edit(base(), actions=[sms("a1"), wait("w9")], connections=link("t1", "a1", "w9"))
        | {"actions": [sms("a1"), wait("w9"), sms("a9")], "connections": link("t1", "a1", "w9", "a9")},
        ("a9",),
    ),
    "unreachable-step": Case(
        edit(base(), actions=[sms("a1"), wait("w8"), sms("a9")], connections=[*link("t1", "a1"), *link("w8", "a9")]),
        edit(base(), actions=[sms("a1"), wait("w8"), sms("a9")], connections=link("t1", "a1", "w8", "a9")),
        ("a9",),
    ),
    "ambiguous-next": Case(
        edit(
            base(),
            actions=[sms("a1"), wait("w1"), wait("w2")],
            connections=[*link("t1", "a1", "w1"), {"from": "a1", "to": "w2"}],
        ),
        edit(base(), actions=[sms("a1"), wait("w1"), wait("w2")], connections=link("t1", "a1", "w1", "w2")),
        ("a1", "w1", "w2"),
    ),
    "empty-condition": Case(
        chain(condition("c1", ("yes", 0), ("none", 0)), connections=[])
        | {
            "connections": [*link("t1", "c1"), *_branches(("c1", "a1", "yes"))],
            "actions": [condition("c1", ("yes", 0), ("none", 0)), sms("a1")],
        },
        {
            **base(),
            "actions": [condition("c1", ("yes", 1), ("none", 0)), sms("a1")],
            "connections": [*link("t1", "c1"), *_branches(("c1", "a1", "yes"))],
        },
        ("c1",),
    ),
    "single-branch-condition": Case(
        {
            **base(),
            "actions": [condition("c1", ("yes", 1)), sms("a1")],
            "connections": [*link("t1", "c1"), *_branches(("c1", "a1", "yes"))],
        },
        {
            **base(),
            "actions": [condition("c1", ("yes", 1), ("none", 0)), sms("a1")],
            "connections": [*link("t1", "c1"), *_branches(("c1", "a1", "yes"))],
        },
        ("c1",),
    ),
    "condition-dead-end": Case(
        {
            **base(),
            "actions": [sms("a1"), condition("c1", ("yes", 1), ("none", 0))],
            "connections": link("t1", "a1", "c1"),
        },
        {
            **base(),
            "actions": [sms("a1"), condition("c1", ("yes", 1), ("none", 0)), sms("a2")],
            "connections": [*link("t1", "a1", "c1"), *_branches(("c1", "a2", "yes"))],
        },
        ("c1",),
    ),
    "wait-dead-end": Case(chain(sms("a1"), wait("w1")), chain(sms("a1"), wait("w1"), sms("a2")), ("w1",)),
    "goto-missing-target": Case(
        chain(sms("a1"), wait("w1"), step("g1", "goto", target="a_gone")),
        chain(sms("a1"), wait("w1"), step("g1", "goto", target="a1")),
        ("g1",),
    ),
    "goto-cycle-without-wait": Case(_goto_loop(False), _goto_loop(True), ("g1", "a1", "a2")),
    "split-percentages": Case(
        {
            **base(),
            "actions": [
                {
                    "id": "s1",
                    "type": "split",
                    "name": "A/B",
                    "branches": [{"id": "p1", "percent": 60}, {"id": "p2", "percent": 60}],
                },
                sms("a1"),
                sms("a2"),
            ],
            "connections": [*link("t1", "s1"), *_branches(("s1", "a1", "p1"), ("s1", "a2", "p2"))],
        },
        {
            **base(),
            "actions": [
                {
                    "id": "s1",
                    "type": "split",
                    "name": "A/B",
                    "branches": [{"id": "p1", "percent": 40}, {"id": "p2", "percent": 60}],
                },
                sms("a1"),
                sms("a2"),
            ],
            "connections": [*link("t1", "s1"), *_branches(("s1", "a1", "p1"), ("s1", "a2", "p2"))],
        },
        ("s1",),
    ),
    "reentry-on-sequence": Case(
        _nurture(allowReentry=True),
        edit(
            _nurture(allowReentry=True),
            triggers=[
                {
                    "id": "t1",
                    "type": "appointment_booked",
                    "name": "Booked",
                    "filters": [{"field": "calendarId", "value": "c"}],
                }
            ],
        ),
        (),
    ),
    "no-stop-on-response": Case(_nurture(stopOnResponse=False), _nurture(stopOnResponse=True), ()),
    "self-retrigger": Case(
        chain(sms("a1"), step("a2", "add_contact_tag", tags=["webinar"])),
        chain(sms("a1"), step("a2", "add_contact_tag", tags=["webinar-confirmed"])),
        ("t1", "a2"),
    ),
    "adds-to-itself": Case(
        chain(sms("a1"), step("a2", "add_to_workflow", workflowId="wf_1")),
        chain(sms("a1"), step("a2", "add_to_workflow", workflowId="wf_other")),
        ("a2",),
    ),
    "duplicate-triggers": Case(
        edit(base(), triggers=[*TAG_TRIGGER, {**TAG_TRIGGER[0], "id": "t2"}]),
        edit(
            base(),
            triggers=[
                *TAG_TRIGGER,
                {**TAG_TRIGGER[0], "id": "t2", "filters": [{"field": "tag", "value": "webinar-vip"}]},
            ],
        ),
        ("t1", "t2"),
    ),
    "trigger-race": Case(
        base(),
        edit(base(), triggers=[{**TAG_TRIGGER[0], "filters": [{"field": "tag", "value": "webinar-2027"}]}]),
        ("t1",),
        Context(
            other_triggers={"Webinar - old copy": frozenset({("contact_tag_added", (Filter("tag", "is", "webinar"),))})}
        ),
    ),
    "back-to-back-messages": Case(
        chain(sms("a1"), sms("a2", "And another thing")),
        chain(sms("a1"), step("e1", "send_email", subject="Details", body="The details")),
        ("a1", "a2"),
    ),
    "message-missing-body": Case(chain(sms("a1", "  ")), chain(sms("a1", "Hello")), ("a1",)),
    "email-missing-subject": Case(
        chain(step("e1", "send_email", body="Hi")), chain(step("e1", "send_email", subject="Hi", body="Hi")), ("e1",)
    ),
    "wait-missing-duration": Case(
        chain(sms("a1"), step("w1", "wait", duration=0), sms("a2", "Later")),
        chain(sms("a1"), step("w1", "wait", type="event", event="email_opened"), sms("a2", "Later")),
        ("w1",),
    ),
    "webhook-missing-url": Case(
        chain(sms("a1"), step("h1", "webhook", method="POST")),
        chain(sms("a1"), step("h1", "webhook", url="https://api.example.com/hook")),
        ("h1",),
    ),
    "webhook-private-url": Case(
        chain(sms("a1"), step("h1", "webhook", url="https://192.168.1.20/hook")),
        chain(sms("a1"), step("h1", "webhook", url="https://hooks.example.com/hook")),
        ("h1",),
    ),
    "webhook-insecure-url": Case(
        chain(sms("a1"), step("h1", "webhook", url="http://hooks.example.com/hook")),
        chain(sms("a1"), step("h1", "webhook", url="https://hooks.example.com/hook")),
        ("h1",),
    ),
    "hardcoded-secret": Case(
        chain(
            sms("a1"),
            step(
                "h1",
                "webhook",
                url="https://api.stripe.com/v1/x",
                headers={"Authorization": "Bearer sk_live_51Habcdefghijklmnop"},
            ),
        ),
        chain(
            sms("a1"),
            step(
                "h1",
                "webhook",
                url="https://api.stripe.com/v1/x",
                headers={"Authorization": "Bearer {{custom_values.stripe_key}}"},
            ),
        ),
        ("h1",),
    ),
    "unknown-user": Case(
        chain(sms("a1"), step("u1", "assign_user", userIds=["usr_gone"])),
        chain(sms("a1"), step("u1", "assign_user", userIds=["usr_1"])),
        ("u1",),
        KNOWN,
    ),
    "unknown-custom-field": Case(
        chain(sms("a1"), step("f1", "update_contact_field", field="old_score", value="1")),
        chain(sms("a1"), step("f1", "update_contact_field", field="score", value="1")),
        ("f1",),
        KNOWN,
    ),
    "unknown-pipeline-stage": Case(
        chain(sms("a1"), step("o1", "create_opportunity", stageId="st_renamed")),
        chain(sms("a1"), step("o1", "create_opportunity", stageId="st_won")),
        ("o1",),
        KNOWN,
    ),
    "notification-missing-recipient": Case(
        chain(sms("a1"), step("n1", "internal_notification", message="New lead")),
        chain(sms("a1"), step("n1", "internal_notification", message="New lead", userIds=["usr_1"])),
        ("n1",),
    ),
    "unknown-action-type": Case(
        chain(sms("a1"), step("x1", "quantum_teleport", speed=9)),
        chain(sms("a1"), step("x1", "create_task", title="Call")),
        ("x1",),
    ),
    "draft-not-published": Case(edit(base(), status="draft"), base(), ()),
    "default-name": Case(edit(base(), name="New Workflow : 1700000000000"), edit(base(), name="New lead workflow"), ()),
    "unnamed-step": Case(chain(sms("a1", name="")), chain(sms("a1", name="Welcome")), ("a1",)),
    "over-long-chain": Case(
        chain(*[x for i in range(31) for x in (sms(f"a{i}"), wait(f"w{i}"))][:-1]),
        chain(*[x for i in range(30) for x in (sms(f"a{i}"), wait(f"w{i}"))][:-1]),
        (),
    ),
    "too-many-steps": Case(
        chain(*[wait(f"w{i}") for i in range(250)], sms("a1")),
        chain(*[wait(f"w{i}") for i in range(249)], sms("a1")),
        (),
    ),
}
